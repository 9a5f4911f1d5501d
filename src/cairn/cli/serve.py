"""``cairn serve MODEL_URI``: serve a version over HTTP, following its alias as it moves."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cairn.cli.common import client
from cairn.cli.output import message
from cairn.domain.uris import parse_model_uri
from cairn.errors import InvalidParameter


def serve(
    ctx: typer.Context,
    model_uri: Annotated[
        str,
        typer.Argument(
            help="models:/NAME@ALIAS (followed as it moves), models:/NAME/VERSION or /latest."
        ),
    ],
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8090,
    deployment: Annotated[
        str | None,
        typer.Option(help="Record this server as deployment NAME (at start and on each swap)."),
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", help="The deployment's environment (for a new one).")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="The SDK's file cache (default: the SDK's own).")
    ] = None,
) -> None:
    """Serve MODEL_URI with MLflow's scoring protocol (POST /invocations, GET /ping,
    GET /version). Only .skops and .onnx files are loaded, never a pickle; needs
    the serve extra of cairn-registry."""
    ref = parse_model_uri(model_uri)
    if env is not None and deployment is None:
        raise InvalidParameter("--env goes with --deployment NAME")
    # the heavy imports (uvicorn, the loaders' libraries) only when serving
    import uvicorn

    from cairn.serving.app import create_serving_app
    from cairn.serving.follow import Serving

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per poll of the event log
    serving = Serving(
        client(ctx),
        model_uri,
        cache_dir=cache_dir,
        deployment=deployment,
        environment=env,
        url=f"http://{host}:{port}",
    )
    try:
        served = serving.start()
        following = f", following @{ref.alias}" if ref.alias is not None else ""
        message(
            f"serving models:/{served.model}/{served.version} ({served.predictor.kind})"
            f"{following} on http://{host}:{port}"
        )
        serving.follow_in_background()
        uvicorn.run(create_serving_app(serving.holder), host=host, port=port, log_level="warning")
    finally:
        serving.stop(timeout=1.0)  # the follower may be in a long poll: not worth waiting
