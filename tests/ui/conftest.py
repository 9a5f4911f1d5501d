"""The web UI's fixtures: a small registry to look at and its users (the browser,
``chromium``, is tests/conftest.py's)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cairn.settings import Settings

PASSWORD = "correct horse battery staple"
V1 = "/api/v1"

# What the registry's text fields hold: markup that would run if a page did not escape it.
XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
WEIGHTS = b"the weights of risk.fraud v1\n" * 100
CONFIG = b'{"layers": 3}'


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class World:
    model: str = "risk.fraud"
    hidden: str = "vault.secret"  # alice may not read it
    reader: str = "alice"  # READ on risk.fraud only
    admin: str = "root"  # an administrator with a password


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Room for the refusals the tests provoke (a test wanting a small limit sets it)."""
    return settings.model_copy(update={"auth_failures_per_minute": 1000})


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json() if response.content else None


@pytest.fixture
def world(api: TestClient) -> World:
    """As the bootstrap admin, over the API: two models, a READY version of the first with
    two files, params, metrics and tags (markup in every text), an alias moved twice, a
    stage; the reader ``alice`` and the administrator ``root``, both with passwords."""
    w = World()
    ok(api.post(f"{V1}/users", json={"name": w.reader, "password": PASSWORD}), 201)
    ok(api.post(f"{V1}/users", json={"name": w.admin, "password": PASSWORD, "admin": True}), 201)
    ok(
        api.post(
            f"{V1}/models",
            json={"name": w.model, "description": f"Fraud model.\n{XSS}", "tags": {"team": XSS}},
        ),
        201,
    )
    ok(api.post(f"{V1}/models", json={"name": w.hidden, "description": "secret"}), 201)
    files = [
        {"path": "model/weights.bin", "size": len(WEIGHTS), "digest": sha(WEIGHTS)},
        {"path": "config.json", "size": len(CONFIG), "digest": sha(CONFIG)},
    ]
    for number, link in ((1, "javascript:alert(document.cookie)"), (2, "https://runs.example/r/7")):
        ok(
            api.post(
                f"{V1}/models/{w.model}/versions",
                json={
                    "files": files,
                    "description": f"v{number} {XSS}",
                    "params": {"lr": "0.01", "payload": XSS},
                    "metrics": {"auc": 0.93},
                    "tags": {"note": XSS},
                    "semver": f"1.{number}.0",
                    "source": "s3://bucket/run/7",
                    "run_id": "run-7",
                    "run_link": link,
                },
            ),
            201,
        )
        for data in (WEIGHTS, CONFIG):
            if number == 1:  # the blobs are shared: stored once, for both versions
                ok(
                    api.put(
                        f"{V1}/models/{w.model}/versions/1/blobs/{sha(data)}",
                        content=data,
                        headers={"Content-Type": "application/octet-stream"},
                    )
                )
    for number in (1, 2):
        version = ok(api.get(f"{V1}/models/{w.model}/versions/{number}"))
        assert version["status"] == "READY", version
    ok(api.put(f"{V1}/models/{w.model}/aliases/champion", json={"version": 1}))
    ok(api.put(f"{V1}/models/{w.model}/aliases/champion", json={"version": 2}))
    ok(
        api.put(
            f"{V1}/grants", json={"subject": f"user:{w.reader}", "role": "READ", "model": w.model}
        )
    )
    return w


def sign_in(client: TestClient, user: str, password: str = PASSWORD, **extra: str) -> Any:
    """Post the sign-in form as a browser on this site would."""
    return client.post(
        "/login",
        data={"user": user, "password": password, **extra},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )


@pytest.fixture
def visitor(app: Any) -> Iterator[TestClient]:
    """A cookie-keeping client with no token that does not follow redirects."""
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client
