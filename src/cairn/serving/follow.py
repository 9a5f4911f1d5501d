"""Load a version into a ``ModelHolder`` and, when served by alias, follow the alias.

``Serving.start`` resolves the URI, pulls the version into a working folder (files come
from the SDK's content-addressed cache when it has them), loads it and records the
deployment. For ``models:/NAME@ALIAS`` a daemon thread then tails the event log
(``alias.*`` of NAME) from a cursor taken *before* the first resolve, so a move in between
is not missed; a registry out of reach is polled again every few seconds. On a move of
that alias it pulls, loads and swaps; a failed load keeps the old model serving, a
deleted alias keeps the last version, and both are logged.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from cairn.client.base import BaseClient
from cairn.domain.audit import FROM_END, AuditEvent
from cairn.domain.uris import parse_model_uri
from cairn.errors import CairnError
from cairn.serving.app import ModelHolder, Served
from cairn.serving.loaders import load_model

log = logging.getLogger("cairn.serve")

RETRY_S = 5.0  # after the event tail ends with an error, start again after this long


class Serving:
    def __init__(
        self,
        client: BaseClient,
        uri: str,
        *,
        holder: ModelHolder | None = None,
        cache_dir: Path | None = None,
        deployment: str | None = None,
        environment: str | None = None,
        url: str | None = None,
        wait: float = 20.0,
    ) -> None:
        self.client, self.uri = client, uri
        self.ref = parse_model_uri(uri)
        self.alias = self.ref.alias
        self.holder = holder or ModelHolder()
        self.cache_dir = cache_dir
        self.deployment, self.environment, self.url = deployment, environment, url
        self.work = Path(tempfile.mkdtemp(prefix="cairn-serve-"))
        self.cursor = FROM_END
        self.wait = wait  # how long one poll of the event log waits for an event
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- start ---------------------------------------------------------------------------
    def start(self) -> Served:
        """Resolve, pull, load and record; errors here are the caller's (nothing serves)."""
        if self.alias is not None:  # the log's end now: every later move is seen
            head = self.client.tail_events(
                after=FROM_END, model=self.ref.name, events=["alias.*"], wait=0
            )
            self.cursor = head.next_after_seq
        version = self.client.resolve(self.uri)
        served = self.load(version.name, version.version)
        self.holder.swap(served)
        self.record(served)
        return served

    def load(self, name: str, number: int) -> Served:
        folder = self.work / f"v{number}"
        if folder.exists():
            shutil.rmtree(folder)
        self.client.pull(f"models:/{name}/{number}", folder, cache_dir=self.cache_dir)
        predictor = load_model(folder)
        log.info("loaded models:/%s/%d (%s, %s)", name, number, predictor.kind, predictor.path)
        return Served(name, number, self.alias, predictor, datetime.now(UTC))

    def record(self, served: Served) -> None:
        if self.deployment is None:
            return
        reason = f"cairn serve {self.uri}"
        self.client.set_deployment(
            self.deployment,
            f"models:/{served.model}/{served.version}",
            environment=self.environment,
            url=self.url,
            reason=reason,
        )
        log.info(
            "deployment %r now serves models:/%s/%d", self.deployment, served.model, served.version
        )

    # -- following -----------------------------------------------------------------------
    def follow_in_background(self) -> None:
        if self.alias is None:
            return
        self._thread = threading.Thread(target=self._follow, name="cairn-serve-follow", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        """``client.follow_events`` until ``stop``; an error that ends it (the token
        revoked, the server gone for good) is logged and the follow starts again from the
        last event handled after ``RETRY_S``."""
        while not self._stop.is_set():
            try:
                for event in self.client.follow_events(
                    after=self.cursor,
                    model=self.ref.name,
                    events=["alias.*"],
                    wait=self.wait,
                    stop=self._stop,
                ):
                    if self._stop.is_set():
                        return
                    self.on_event(event)
                    self.cursor = event.seq
            except Exception as exc:
                if self._stop.is_set():
                    return
                detail = exc.message if isinstance(exc, CairnError) else repr(exc)
                log.warning("following @%s: %s; again in %gs", self.alias, detail, RETRY_S)
            self._stop.wait(RETRY_S)

    def on_event(self, event: AuditEvent) -> None:
        if self.alias is None or event.outcome != "ok":  # a refused move changed nothing
            return
        if (event.target or "").casefold() != self.alias.casefold():
            return
        if event.action == "alias.delete":
            current = self.holder.current
            kept = "nothing" if current is None else f"version {current.version}"
            log.warning("@%s was deleted; keeping %s", self.alias, kept)
            return
        if event.action != "alias.set" or not isinstance(event.after, int):
            return
        current = self.holder.current
        if current is not None and current.version == event.after:
            return
        name = current.model if current is not None else self.ref.name
        try:
            served = self.load(name, event.after)
        except Exception as exc:  # any failure to load: the old model keeps serving
            detail = exc.message if isinstance(exc, CairnError) else f"{type(exc).__name__}: {exc}"
            log.error(
                "@%s moved to version %d, which did not load (%s); still serving %s",
                self.alias,
                event.after,
                detail,
                "nothing" if current is None else f"version {current.version}",
            )
            return
        self.holder.swap(served)
        log.info("@%s moved: now serving version %d", self.alias, served.version)
        try:
            self.record(served)
        except CairnError as exc:
            log.error("could not record deployment %r: %s", self.deployment, exc.message)
        if current is not None:
            shutil.rmtree(self.work / f"v{current.version}", ignore_errors=True)

    def stop(self, timeout: float | None = None) -> None:
        """Stop following and remove the working folder. Waits up to ``timeout`` seconds
        (default: as long as a poll in flight can take) for the thread to end; a process
        about to exit need not wait, the thread is a daemon."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.wait + RETRY_S + 5 if timeout is None else timeout)
        shutil.rmtree(self.work, ignore_errors=True)
