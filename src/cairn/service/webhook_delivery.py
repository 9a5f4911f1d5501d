"""The dispatcher: works through the webhook outbox, at least once, with retries.

Every server process runs one (``start``/``stop``, from the app's lifespan). A round
(``run_once``) claims a small batch of due deliveries in one transaction, leasing them for
``lease_s`` and counting an attempt each (``WebhookStore.claim``: ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so dispatchers of several processes take different rows), POSTs
each outside any transaction, then records each outcome in its own short transaction.
A 2xx answer is delivered; anything else is retried after an exponential back-off with
jitter, until ``max_attempts``, then the delivery is ``failed``. A process that dies
mid-attempt leaves its lease to expire, and another dispatcher tries again: a receiver
may see a delivery twice and dedupes on ``Cairn-Delivery``.

A webhook's secret comes out of the claim sealed, and is opened (``Keyring.reveal``) just
before its POST is signed; one that does not open (its key is not among this server's
keys) is a failed attempt whose error says so.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cairn.domain.webhooks import secret_context, secret_label
from cairn.errors import CairnError
from cairn.service.keyring import Keyring
from cairn.service.webhook_net import Attempt, Resolver, destination, post, resolve
from cairn.store.metadata.clock import now_us
from cairn.store.metadata.database import Database, Tx
from cairn.store.metadata.webhooks_store import WebhookStore

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)
_US = 1_000_000


def backoff_s(attempts: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds before attempt ``attempts + 1``: ``base * 2^(attempts-1)``, at most ``cap``,
    of which a random half is taken off ("equal jitter"), so failed receivers are not hit
    by every retry at the same moment."""
    full = min(cap_s, base_s * 2.0 ** max(attempts - 1, 0))
    return full / 2 + rng.uniform(0, full / 2)


class Dispatcher:
    def __init__(
        self,
        db: Database,
        *,
        keyring: Keyring,
        allow_private: bool = False,
        max_attempts: int = 8,
        timeout_s: float = 5.0,
        batch: int = 10,
        lease_s: float | None = None,
        backoff_base_s: float = 30.0,
        backoff_cap_s: float = 3600.0,
        poll_s: float = 1.0,
        clock: Callable[[], int] = now_us,
        resolver: Resolver = resolve,
        verify: ssl.SSLContext | bool = True,  # the system's CAs (tests give their own)
    ) -> None:
        self.db = db
        self.keyring = keyring  # the service's: what sealed the secrets opens them
        self.allow_private = allow_private
        self.max_attempts = max_attempts
        self.batch = batch
        # long enough for every attempt of a batch (connect, send and answer each within
        # the timeout, and the lookup), so that no other dispatcher takes a row still in hand
        lease = batch * (3 * timeout_s + 5) + 30 if lease_s is None else lease_s
        self.lease_us = int(lease * _US)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.poll_s = poll_s
        self.clock = clock
        self.resolver = resolver
        self._rng = random.Random()  # noqa: S311 (jitter, not a secret)
        self._timeout_s = timeout_s
        self._verify = verify
        self._http: httpx.Client | None = None  # made by the first attempt
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one round, as tests and the background thread run it ---------------------------

    def run_once(self) -> int:
        """Claim due deliveries, attempt each, record the outcomes; how many were tried."""
        now = self.clock()
        lease_until = now + self.lease_us
        if not self.db.read(lambda s: WebhookStore(s).any_due(now)):
            return 0
        claimed = self.db.write(lambda s: WebhookStore(s).claim(now, lease_until, self.batch))
        for row in claimed:
            attempt = self._attempt(row)
            self._record(row, lease_until, attempt)
        return len(claimed)

    def _attempt(self, row: Any) -> Attempt:
        if row.payload is None or row.payload == "null":
            return Attempt(False, None, "the audit event of this delivery is gone")
        try:
            dest = destination(row.url, allow_private=self.allow_private, resolver=self.resolver)
            secret = self.keyring.reveal(
                row.secret,
                secret_context(int(row.webhook_id), row.webhook_name),
                secret_label(row.webhook_name),
            )
        except CairnError as exc:
            return Attempt(False, None, exc.message)
        return post(
            self._client(),
            dest,
            secret=secret,
            event=row.event,
            delivery_id=row.uid,
            body=row.payload.encode(),
            now_s=lambda: self.clock() / _US,
        )

    def _client(self) -> httpx.Client:
        if self._http is None:
            import httpx

            # no proxies from the environment: the POST must reach the address checked
            self._http = httpx.Client(
                timeout=httpx.Timeout(self._timeout_s),
                trust_env=False,
                verify=self._verify,
            )
        return self._http

    def _record(self, row: Any, lease_until: int, attempt: Attempt) -> None:
        now = self.clock()
        attempts = int(row.attempts)
        # a finished delivery's next_attempt_at is when it finished: gc's retention ages it
        if attempt.ok:
            status, retry_at = "succeeded", now
        elif attempts >= self.max_attempts:
            status, retry_at = "failed", now
        else:
            wait = backoff_s(
                attempts, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s, rng=self._rng
            )
            status, retry_at = "pending", now + int(wait * _US)

        def run(s: Tx) -> bool:
            return WebhookStore(s).record(
                int(row.id),
                lease_until,
                status=status,
                next_attempt_at=retry_at,
                status_code=attempt.status_code,
                error=attempt.error,
                delivered_at=now if attempt.ok else None,
            )

        if not self.db.write(run):
            log.warning("webhook delivery %s: its lease ran out before its outcome", row.uid)

    # -- the background thread ------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="cairn-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once() >= self.batch
            except CairnError as exc:  # the database away for a while: try again later
                log.warning("webhook dispatcher: %s", exc.message)
                busy = False
            except Exception:  # a worker that dies delivers nothing more: log, go on
                log.exception("webhook dispatcher: a round failed")
                busy = False
            if not busy:
                self._stop.wait(self.poll_s)
