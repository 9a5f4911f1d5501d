"""Webhooks end to end on SQLite and PostgreSQL: a change through the API, the outbox the
trigger fills in its transaction, the dispatcher (driven by ``run_once``) POSTing signed
JSON to a real receiver on loopback; retries, exhaustion, redelivery, filters, pauses,
two dispatchers at once, and where a webhook may connect."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from cairn.app import create_app
from cairn.domain.access import SYSTEM
from cairn.domain.lineage import dataset_input
from cairn.domain.webhooks import verify_signature
from cairn.errors import InvalidParameter
from cairn.service.base import Limits
from cairn.service.keyring import KEY_FILE, Keyring
from cairn.service.registry import RegistryService
from cairn.service.webhook_delivery import Dispatcher, backoff_s
from cairn.settings import Settings
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.metadata.database import Database
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.webhooks_store import WebhookStore

HOUR_US = 3600 * 1_000_000


class Clock:
    """The dispatcher's time: now, until a test moves it on."""

    def __init__(self, svc: RegistryService) -> None:
        self.now = svc.clock() + 60_000_000  # a minute on: what was just queued is due

    def __call__(self) -> int:
        return self.now

    def advance(self, hours: float = 2) -> None:
        self.now += int(hours * HOUR_US)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Their receivers listen on loopback (the app delivers nothing by itself: conftest)."""
    return settings.model_copy(update={"webhook_allow_private": True})


@pytest.fixture
def svc(db: Database, blob_root: Path, tmp_path: Path) -> RegistryService:
    return RegistryService(
        db,
        LocalBlobStore(blob_root),
        limits=Limits(webhook_allow_private=True),
        keyring=Keyring(key_file=tmp_path / KEY_FILE),
    )


@pytest.fixture
def clock(svc: RegistryService) -> Clock:
    return Clock(svc)


@pytest.fixture
def dispatcher(db: Database, svc: RegistryService, clock: Clock) -> Iterator[Dispatcher]:
    d = Dispatcher(
        db, keyring=svc.keyring, allow_private=True, timeout_s=0.5, max_attempts=3, clock=clock
    )
    yield d
    d.stop()


def deliveries(svc: RegistryService, name: str) -> list[Any]:
    return list(svc.list_webhook_deliveries(SYSTEM, name, max_results=1000).items)


def events_of(svc: RegistryService, name: str) -> list[tuple[str, str | None]]:
    return sorted((d.event, d.payload["model"]) for d in deliveries(svc, name))


def test_a_change_through_the_api_arrives_signed(
    app: FastAPI, api: TestClient, receiver: Any, clock: Clock
) -> None:
    made = api.post("/api/v1/webhooks", json={"name": "ci", "url": receiver.url})
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert api.post("/api/v1/models", json={"name": "fraud"}).status_code == 201
    assert api.post("/api/v1/models/fraud/versions", json={}).status_code == 201
    assert api.put("/api/v1/models/fraud/aliases/prod", json={"version": 1}).status_code == 200

    service = app.state.service
    dispatcher = Dispatcher(service.db, keyring=service.keyring, allow_private=True, clock=clock)
    try:
        assert dispatcher.run_once() == 3
        assert dispatcher.run_once() == 0  # each delivered once
    finally:
        dispatcher.stop()
    got = sorted(receiver.received, key=lambda r: json.loads(r[1])["event_id"])
    assert [h["Cairn-Event"] for h, _ in got] == ["model.create", "version.create", "alias.set"]
    for headers, body in got:
        assert verify_signature(secret, headers["Cairn-Signature"], body, now=clock() // 10**6)
        assert not verify_signature("whsec_another", headers["Cairn-Signature"], body, now=0)
        assert headers["Content-Type"] == "application/json"
    alias = json.loads(got[-1][1])
    assert alias["model"] == "fraud" and alias["target"] == "prod" and alias["after"] == 1
    assert alias["actor"] == "admin" and alias["webhook"] == "ci"
    assert "client" not in alias and "request_id" not in alias  # not a reader's to see
    log = api.get("/api/v1/webhooks/ci/deliveries").json()["deliveries"]
    assert {d["status"] for d in log} == {"succeeded"}
    assert {d["id"] for d in log} == {h["Cairn-Delivery"] for h, _ in got}
    assert all(d["last_status_code"] == 200 and d["attempts"] == 1 for d in log)


def test_the_server_delivers_in_the_background_and_stops_with_it(
    settings: Settings, admin_headers: dict[str, str], receiver: Any
) -> None:
    """The app's lifespan starts a dispatcher thread (``CAIRN_WEBHOOKS``) and stops it."""
    app = create_app(settings.model_copy(update={"webhooks": True}))
    try:
        with TestClient(app, raise_server_exceptions=False, headers=admin_headers) as api:
            body = {"name": "hook", "url": receiver.url}
            assert api.post("/api/v1/webhooks", json=body).status_code == 201
            assert api.post("/api/v1/webhooks/hook/ping").status_code == 202
            assert receiver.got.wait(60), "the dispatcher thread delivered nothing"
            assert any(t.name == "cairn-webhooks" for t in threading.enumerate())
        assert not any(t.name == "cairn-webhooks" for t in threading.enumerate())
    finally:
        app.state.service.db.dispose()
    assert [h["Cairn-Event"] for h, _ in receiver.received] == ["ping"]


def test_a_rolled_back_change_emits_nothing(svc: RegistryService) -> None:
    svc.create_model(SYSTEM, "risk.a")
    svc.create_webhook(SYSTEM, "hook", "http://127.0.0.1:9/", scope="risk.*")

    def change(s: Any, fail: bool) -> None:
        row = ModelStore(s).find_live("risk.a")
        svc._audit(s, SYSTEM, "model.update", model=row, after={"description": "x"})
        if fail:
            raise InvalidParameter("the change fails after its audit record")

    with pytest.raises(InvalidParameter):
        svc.db.write(lambda s: change(s, fail=True))
    assert deliveries(svc, "hook") == []
    svc.db.write(lambda s: change(s, fail=False))
    assert events_of(svc, "hook") == [("model.update", "risk.a")]
    # a refused attempt is audited too, and sent nowhere
    model_id = svc.db.read(lambda s: int(ModelStore(s).find_live("risk.a").id))
    svc.record_denial(SYSTEM, {"action": "model.update", "model": "risk.a", "model_id": model_id})
    assert len(deliveries(svc, "hook")) == 1


def test_retries_after_500_and_a_timeout_then_success(
    svc: RegistryService, receiver: Any, dispatcher: Dispatcher, clock: Clock
) -> None:
    svc.create_webhook(SYSTEM, "hook", receiver.url)
    svc.create_model(SYSTEM, "m")
    receiver.script = [500, "hang"]

    assert dispatcher.run_once() == 1
    (d,) = deliveries(svc, "hook")
    assert (d.status, d.attempts, d.last_status_code) == ("pending", 1, 500)
    assert d.next_attempt_at is not None
    assert dispatcher.run_once() == 0  # not due before its back-off

    clock.advance()
    assert dispatcher.run_once() == 1  # the receiver does not answer in time
    receiver.released.set()
    (d,) = deliveries(svc, "hook")
    assert (d.status, d.attempts, d.last_status_code) == ("pending", 2, None)
    assert d.last_error is not None and "Timeout" in d.last_error

    clock.advance()
    assert dispatcher.run_once() == 1
    (d,) = deliveries(svc, "hook")
    assert (d.status, d.attempts, d.last_status_code, d.last_error) == ("succeeded", 3, 200, None)
    assert d.delivered_at is not None
    ids = {h["Cairn-Delivery"] for h, _ in receiver.received}
    assert ids == {d.id}  # every attempt carries the same id: receivers dedupe on it
    assert len(receiver.received) == 2  # the 500 and the success (the hang never finished)


def test_exhausted_retries_mark_the_delivery_failed(
    svc: RegistryService, receiver: Any, dispatcher: Dispatcher, clock: Clock
) -> None:
    svc.create_webhook(SYSTEM, "hook", receiver.url)
    svc.create_model(SYSTEM, "m")
    receiver.script = [500, 502, 503, 200]
    for _ in range(3):
        assert dispatcher.run_once() == 1
        clock.advance(24)
    assert dispatcher.run_once() == 0
    (d,) = deliveries(svc, "hook")
    assert (d.status, d.attempts, d.last_status_code) == ("failed", 3, 503)
    assert d.next_attempt_at is None
    assert [d.id for d in svc.list_webhook_deliveries(SYSTEM, "hook", status="failed").items] == [
        d.id
    ]


def test_redeliver_sends_the_same_payload_as_a_new_delivery(
    svc: RegistryService, receiver: Any, dispatcher: Dispatcher
) -> None:
    svc.create_webhook(SYSTEM, "hook", receiver.url)
    svc.create_model(SYSTEM, "m")
    dispatcher.run_once()
    (first,) = deliveries(svc, "hook")
    again = svc.redeliver_webhook(SYSTEM, "hook", first.id)
    assert again.redelivery_of == first.id and again.id != first.id
    assert again.status == "pending" and again.payload == first.payload
    assert dispatcher.run_once() == 1
    (h1, b1), (h2, b2) = receiver.received
    assert b1 == b2 and h1["Cairn-Delivery"] == first.id and h2["Cairn-Delivery"] == again.id
    with pytest.raises(Exception, match="does not exist"):
        svc.redeliver_webhook(SYSTEM, "hook", "f" * 32)


def test_ping_reaches_the_receiver(
    svc: RegistryService, receiver: Any, dispatcher: Dispatcher
) -> None:
    _, secret = svc.create_webhook(SYSTEM, "hook", receiver.url, events=["alias.*"])
    ping = svc.ping_webhook(SYSTEM, "hook")
    assert ping.event == "ping" and ping.payload["webhook"] == "hook"
    assert dispatcher.run_once() == 1
    ((headers, body),) = receiver.received
    assert headers["Cairn-Event"] == "ping" and json.loads(body)["event"] == "ping"
    assert verify_signature(
        secret, headers["Cairn-Signature"], body, now=dispatcher.clock() // 10**6
    )


def test_scope_and_event_filters(svc: RegistryService) -> None:
    url = "http://127.0.0.1:9/"
    svc.create_webhook(SYSTEM, "risk-aliases", url, scope="risk.*", events=["alias.*"])
    svc.create_webhook(SYSTEM, "one-model", url, scope="Risk.Fraud", events=["*"])
    svc.create_webhook(SYSTEM, "ready", url, events=["version.finalize", "model.delete"])
    for name in ("risk.fraud", "risk.churn", "ops.x"):
        svc.create_model(SYSTEM, name)
        svc.create_version(SYSTEM, name)
        svc.set_alias(SYSTEM, name, "prod", 1)
    svc.delete_model(SYSTEM, "ops.x")
    assert events_of(svc, "risk-aliases") == [
        ("alias.set", "risk.churn"),
        ("alias.set", "risk.fraud"),
    ]
    assert events_of(svc, "one-model") == [
        ("alias.set", "risk.fraud"),
        ("model.create", "risk.fraud"),
        ("version.create", "risk.fraud"),
    ]
    assert events_of(svc, "ready") == [("model.delete", "ops.x")]
    with pytest.raises(InvalidParameter, match="not one a webhook can carry"):
        svc.create_webhook(SYSTEM, "bad", url, events=["grant.set"])  # not a reader's event
    with pytest.raises(InvalidParameter):
        svc.create_webhook(SYSTEM, "bad", url, scope="risk*x")


def test_lineage_changes_are_events(svc: RegistryService) -> None:
    svc.create_webhook(SYSTEM, "lineage", "http://127.0.0.1:9/", events=["lineage.*"])
    svc.create_model(SYSTEM, "risk.fraud")
    svc.create_version(SYSTEM, "risk.fraud")
    [recorded] = svc.record_inputs(
        SYSTEM, "risk.fraud", 1, [dataset_input("s3://lake/cards/2026-11")]
    )
    assert recorded.id is not None
    svc.remove_input(SYSTEM, "risk.fraud", 1, recorded.id)
    assert events_of(svc, "lineage") == [
        ("lineage.record", "risk.fraud"),
        ("lineage.remove", "risk.fraud"),
    ]


def test_deployment_changes_are_events_and_feedback_is_not(svc: RegistryService) -> None:
    svc.create_webhook(SYSTEM, "deploys", "http://127.0.0.1:9/", events=["deployment.*"])
    svc.create_model(SYSTEM, "risk.fraud")
    svc.create_version(SYSTEM, "risk.fraud")
    svc.set_deployment(SYSTEM, "api", "models:/risk.fraud/1", environment="prod")
    point = {"key": "auc", "value": 0.9, "timestamp": datetime.now(UTC)}
    svc.push_feedback(SYSTEM, "api", [point])
    svc.retire_deployment(SYSTEM, "api")
    assert events_of(svc, "deploys") == [
        ("deployment.retire", "risk.fraud"),
        ("deployment.set", "risk.fraud"),
    ]
    with pytest.raises(InvalidParameter):
        svc.create_webhook(
            SYSTEM, "feedback", "http://127.0.0.1:9/", events=["deployment.feedback"]
        )


def test_a_paused_webhook_queues_nothing_and_holds_what_was_queued(
    svc: RegistryService, receiver: Any, dispatcher: Dispatcher
) -> None:
    svc.create_webhook(SYSTEM, "hook", receiver.url)
    svc.create_model(SYSTEM, "a")
    svc.update_webhook(SYSTEM, "hook", active=False)
    svc.create_model(SYSTEM, "b")
    assert dispatcher.run_once() == 0
    assert events_of(svc, "hook") == [("model.create", "a")]
    svc.update_webhook(SYSTEM, "hook", active=True)
    assert dispatcher.run_once() == 1 and len(receiver.received) == 1


def test_the_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    rng = random.Random(7)
    for attempts, full in ((1, 30), (2, 60), (3, 120), (8, 3600), (20, 3600)):
        waits = [backoff_s(attempts, base_s=30, cap_s=3600, rng=rng) for _ in range(50)]
        assert all(full / 2 <= w <= full for w in waits)
        assert len(set(waits)) > 1  # jittered: retries of many deliveries spread out


@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_dispatchers_on_postgresql_never_take_the_same_row(
    svc: RegistryService, db: Database, clock: Clock, receiver: Any
) -> None:
    svc.create_webhook(SYSTEM, "hook", receiver.url)
    for i in range(12):
        svc.create_model(SYSTEM, f"m{i}")
    now = clock()
    # dispatcher A holds its claim's row locks while B claims: B skips them, never waits
    with db.engine.begin() as a:
        taken_a = WebhookStore(a).claim(now, now + HOUR_US, 5)
        with db.engine.begin() as b:
            b.execute(text("SET LOCAL lock_timeout = '5s'"))
            taken_b = WebhookStore(b).claim(now, now + HOUR_US, 100)
    ids_a, ids_b = {r.id for r in taken_a}, {r.id for r in taken_b}
    assert len(ids_a) == 5 and len(ids_b) == 7 and not ids_a & ids_b

    # and two dispatchers running at once deliver each row exactly once
    with db.engine.begin() as c:
        c.execute(text("UPDATE webhook_deliveries SET claimed_until = NULL, attempts = 0"))
    later = Clock(svc)
    dispatchers = [
        Dispatcher(db, keyring=svc.keyring, allow_private=True, batch=2, clock=later)
        for _ in range(2)
    ]
    start = threading.Barrier(2)

    def work(d: Dispatcher) -> None:
        start.wait()
        while d.run_once():
            pass

    threads = [threading.Thread(target=work, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for d in dispatchers:
        d.stop()
    sent = [h["Cairn-Delivery"] for h, _ in receiver.received]
    assert len(sent) == 12 and len(set(sent)) == 12
    assert {d.status for d in deliveries(svc, "hook")} == {"succeeded"}


# -- where a webhook may connect --------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/hook",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://224.0.0.1/",
    ],
)
def test_internal_addresses_are_refused_without_the_setting(
    service: RegistryService, url: str
) -> None:
    with pytest.raises(InvalidParameter, match="CAIRN_WEBHOOK_ALLOW_PRIVATE"):
        service.create_webhook(SYSTEM, "hook", url)
    assert service.list_webhooks(SYSTEM) == []


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "http://u:p@example.com/", "http:///x"]
)
def test_only_plain_http_urls_are_taken(svc: RegistryService, url: str) -> None:
    with pytest.raises(InvalidParameter):
        svc.create_webhook(SYSTEM, "hook", url)


def test_dns_rebinding_is_caught_at_delivery(
    service: RegistryService, db: Database, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name resolved to a public address when the webhook was made, and to loopback
    when it is used: the attempt is refused, and nothing is sent."""
    answers = {"hooks.example": ["93.184.216.34"]}
    monkeypatch.setattr(service, "webhook_resolver", lambda host, _port: answers[host])
    port = receiver.url.rsplit(":", 1)[1]
    service.create_webhook(SYSTEM, "hook", f"http://hooks.example:{port}")
    service.create_model(SYSTEM, "m")
    answers["hooks.example"] = ["127.0.0.1"]
    clock = Clock(service)
    d = Dispatcher(
        db, keyring=service.keyring, clock=clock, resolver=lambda host, _port: answers[host]
    )
    try:
        assert d.run_once() == 1
    finally:
        d.stop()
    (attempt,) = deliveries(service, "hook")
    assert attempt.status == "pending" and "loopback" in (attempt.last_error or "")
    assert receiver.received == []


def test_the_post_goes_to_the_address_that_was_checked(
    svc: RegistryService, db: Database, receiver: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hooks.example`` resolves nowhere here: the POST reaches the receiver only because
    it is sent to the address the check resolved, with the URL's host in ``Host``."""
    fake_dns = {"hooks.example": ["127.0.0.1"]}
    monkeypatch.setattr(svc, "webhook_resolver", lambda host, _port: fake_dns[host])
    port = receiver.url.rsplit(":", 1)[1].split("/")[0]
    svc.create_webhook(SYSTEM, "hook", f"http://hooks.example:{port}/in?x=1")
    svc.ping_webhook(SYSTEM, "hook")
    d = Dispatcher(
        db,
        keyring=svc.keyring,
        allow_private=True,
        clock=clock,
        resolver=lambda h, _p: fake_dns[h],
    )
    try:
        assert d.run_once() == 1
    finally:
        d.stop()
    ((headers, _),) = receiver.received
    assert headers["Host"] == f"hooks.example:{port}"
    assert deliveries(svc, "hook")[0].status == "succeeded"


def test_redirects_are_not_followed(
    svc: RegistryService, receiver: Any, dispatcher: Dispatcher
) -> None:
    svc.create_webhook(SYSTEM, "hook", receiver.url)
    svc.ping_webhook(SYSTEM, "hook")
    receiver.script = [302]
    dispatcher.run_once()
    (d,) = deliveries(svc, "hook")
    assert (d.status, d.last_status_code, d.last_error) == ("pending", 302, "HTTP 302")
    assert len(receiver.received) == 1


def test_the_delivery_log_pages_newest_first(svc: RegistryService) -> None:
    svc.create_webhook(SYSTEM, "hook", "http://127.0.0.1:9/")
    made = [svc.ping_webhook(SYSTEM, "hook").id for _ in range(5)]
    seen, token = [], None
    while True:
        page = svc.list_webhook_deliveries(SYSTEM, "hook", max_results=2, page_token=token)
        seen += [d.id for d in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert seen == made[::-1]
    with pytest.raises(InvalidParameter, match="page_token"):  # bound to its query
        first = svc.list_webhook_deliveries(SYSTEM, "hook", max_results=2)
        svc.list_webhook_deliveries(
            SYSTEM, "hook", status="failed", page_token=first.next_page_token
        )
    with pytest.raises(InvalidParameter, match="status"):
        svc.list_webhook_deliveries(SYSTEM, "hook", status="lost")


def _tls_receiver(tmp_path: Path) -> tuple[Any, str]:
    """An https receiver on loopback whose certificate names ``hooks.example`` only; the
    certificate's PEM (the trust a test dispatcher is given)."""
    import ssl
    from datetime import UTC, datetime, timedelta
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.example")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, str(cert_path)


def test_https_goes_to_the_checked_address_and_checks_the_url_s_name(
    svc: RegistryService,
    db: Database,
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The POST is sent to the address that was checked, and the certificate is checked
    against the URL's host (sent as the TLS server name), not against the address."""
    import ssl

    server, ca = _tls_receiver(tmp_path)
    port = server.server_address[1]
    fake_dns = {"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]}
    monkeypatch.setattr(svc, "webhook_resolver", lambda host, _port: fake_dns[host])
    svc.create_webhook(SYSTEM, "right", f"https://hooks.example:{port}/in")
    svc.create_webhook(SYSTEM, "wrong", f"https://other.example:{port}/in")
    svc.ping_webhook(SYSTEM, "right")
    svc.ping_webhook(SYSTEM, "wrong")
    trust = ssl.create_default_context(cafile=ca)
    d = Dispatcher(
        db,
        keyring=svc.keyring,
        allow_private=True,
        clock=clock,
        resolver=lambda h, _p: fake_dns[h],
        verify=trust,
    )
    try:
        assert d.run_once() == 2
    finally:
        d.stop()
        server.shutdown()
        server.server_close()
    (right,) = deliveries(svc, "right")
    (wrong,) = deliveries(svc, "wrong")
    assert (right.status, right.last_status_code) == ("succeeded", 200)
    assert wrong.status == "pending" and "CERTIFICATE_VERIFY_FAILED" in (wrong.last_error or "")
