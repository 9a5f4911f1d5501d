"""The pure rules of webhooks: event filters, scopes, URLs, addresses, signatures."""

from __future__ import annotations

import hashlib
import hmac
import importlib

import pytest

from cairn.domain.access import Actor, Grant, Role
from cairn.domain.webhooks import (
    EVENTS,
    MAX_FAMILY_DOTS,
    clean_events,
    clean_scope,
    clean_url,
    events_column,
    events_from_column,
    forbidden_address,
    may_manage_scope,
    selects,
    signature_header,
    verify_signature,
)
from cairn.errors import InvalidParameter


def test_event_filters_are_kept_as_given_and_select_events_now_and_later() -> None:
    """A filter is stored as patterns, not expanded: '*' and a family take the events a
    later Cairn adds (an expansion made at creation would have left them out)."""
    assert clean_events("*") == ("*",)
    assert clean_events(["alias.*", "alias.set", "version.finalize", "*"]) == ("*",)
    assert clean_events(["alias.*", "alias.set", "version.finalize"]) == (
        "alias.*",
        "version.finalize",
    )
    assert clean_events(["version.tag.*"]) == ("version.tag.*",)
    assert selects(("version.tag.*",), "version.tag.set")
    assert not selects(("version.tag.*",), "version.stage")
    assert selects(("alias.*",), "alias.renamed-in-a-later-cairn")
    assert selects(("*",), "anything")
    stored = events_column(clean_events(["alias.*"]))
    assert stored == ",alias.*," and events_from_column(stored) == ("alias.*",)
    for bad in (["token.create"], ["grant.*"], ["alias.set.x.*"], [], [""], {"a": 1}, [3]):
        with pytest.raises(InvalidParameter):
            clean_events(bad)


def test_the_trigger_carries_exactly_the_events_the_domain_lists() -> None:
    """A new event type needs a migration that re-creates the trigger with it."""
    migration = importlib.import_module("cairn.store.metadata.migrations.versions.0017_webhooks")
    assert set(migration.DELIVERABLE) == set(EVENTS)
    assert max(e.count(".") for e in EVENTS) <= MAX_FAMILY_DOTS


def test_scopes_are_grant_patterns_over_name_keys() -> None:
    assert clean_scope("*") == ("*", "", False)
    assert clean_scope("Risk.*") == ("Risk.*", "risk.", False)
    assert clean_scope("Risk.Fraud") == ("Risk.Fraud", "risk.fraud", True)
    for bad in ("", "ri*sk.*", "risk*", None):
        with pytest.raises(InvalidParameter):
            clean_scope(bad)


def test_managing_a_scope() -> None:
    admin = Actor("root", is_admin=True)
    risk = Actor("carl", grants=(Grant(Role.MANAGE, pattern="risk.*"),))
    by_id = Actor("ann", grants=(Grant(Role.MANAGE, model_id=7),))
    assert may_manage_scope(admin, "", False, None)
    assert not may_manage_scope(risk, "", False, None)
    assert may_manage_scope(risk, "risk.", False, None)
    assert may_manage_scope(risk, "risk.fraud-", False, None)
    assert not may_manage_scope(risk, "ris", False, None)
    assert may_manage_scope(risk, "risk.fraud", True, None)
    assert may_manage_scope(by_id, "x", True, 7) and not may_manage_scope(by_id, "x", True, 8)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "https://user:pw@example.com/",
        "http://example.com/#frag",
        "http:///path",
        "http://exa mple.com/",
        "http://example.com:0/",
        "http://example.com:99999/",
        "example.com/hook",
        "",
        "http://example.com/" + "a" * 2048,
    ],
)
def test_urls_that_are_refused(url: str) -> None:
    with pytest.raises(InvalidParameter):
        clean_url(url)


def test_urls_that_are_taken() -> None:
    for url in ("https://ci.example.com/cairn?team=risk", "http://10.0.0.5:8080/x"):
        assert clean_url(url) == url


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "globally reachable"),
        ("192.0.2.1", "private"),
    ],
)
def test_internal_addresses(address: str, kind: str) -> None:
    why = forbidden_address(address)
    assert why is not None and kind in why


def test_public_addresses() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert forbidden_address(address) is None


def test_the_signature_is_stripe_s_scheme() -> None:
    body = b'{"event":"ping"}'
    header = signature_header("whsec_k", 1_800_000_000, body)
    expected = hmac.new(b"whsec_k", b"1800000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={expected}"
    assert verify_signature("whsec_k", header, body, now=1_800_000_100)
    assert not verify_signature("whsec_k", header, body + b" ", now=1_800_000_100)
    assert not verify_signature("whsec_other", header, body, now=1_800_000_100)
    assert not verify_signature("whsec_k", header, body, now=1_800_000_301)  # too old
    assert not verify_signature("whsec_k", "v1=" + expected, body, now=1_800_000_000)
    assert not verify_signature("whsec_k", "t=x,v1=" + expected, body, now=1_800_000_000)
    # a receiver may list the signatures of two secrets while rotating
    two = f"t=1800000000,v1={'0' * 64},v1={expected}"
    assert verify_signature("whsec_k", two, body, now=1_800_000_000)
