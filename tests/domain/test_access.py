"""A caller's grants, indexed (``domain/access.py``): the same answers as checking every
grant in turn, whatever the grants."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.access import Actor, Grant, Grants, ReadFilter, Role, Scope

KEYS = ["fraud", "risk.a", "risk.b", "team-x"]
PATTERNS = ["*", "risk.*", "team-*", "fraud", "risk.a"]

grant = st.one_of(
    st.builds(Grant, st.sampled_from(list(Role)), model_id=st.integers(1, 4)),
    st.builds(Grant, st.sampled_from(list(Role)), pattern=st.sampled_from(PATTERNS)),
)


def _every_grant(grants: list[Grant], model_id: int | None, key: str) -> Role | None:
    return max((g.role for g in grants if g.covers(model_id, key)), default=None)


@given(st.lists(grant, max_size=12), st.one_of(st.none(), st.integers(1, 5)))
def test_the_index_answers_as_every_grant_would(grants: list[Grant], model_id: int | None) -> None:
    held = Grants(grants)
    for key in KEYS:
        assert held.role_on(model_id, key) == _every_grant(grants, model_id, key)


@given(st.lists(grant, max_size=12))
def test_what_a_reader_may_list(grants: list[Grant]) -> None:
    readable = Actor("u", scope=Scope.READ, grants=tuple(grants)).readable()
    if any(g.pattern == "*" for g in grants):
        assert readable is None
        return
    assert isinstance(readable, ReadFilter)
    assert set(readable.model_ids) == {g.model_id for g in grants if g.model_id is not None}
    patterns = {g.pattern for g in grants if g.pattern}
    assert set(readable.exact) == {p for p in patterns if not p.endswith("*")}
    assert set(readable.prefixes) == {p[:-1] for p in patterns if p.endswith("*")}


def test_thousands_of_creator_grants_are_one_lookup() -> None:
    held = Grants([Grant(Role.MANAGE, model_id=i) for i in range(1, 10_001)])
    actor = Actor("ci", scope=Scope.READ, grants=held)
    assert actor.role_on(7_777, "team.m7777") is Role.READ  # capped by the token's scope
    assert actor.role_on(None, "team.new") is None
    assert len(actor.grants) == 10_000
    assert actor.grants == Grants(list(held))


def test_a_users_model_grants_are_left_to_the_database() -> None:
    """Grants loaded for a user name their models by that user (queries read the grants
    table); without model grants there is nothing to read there."""
    held = Grants([Grant(Role.READ, model_id=3), Grant(Role.READ, pattern="risk.*")], holder=7)
    assert held.readable == ReadFilter(exact=(), prefixes=("risk.",), holder=7)
    assert held.role_on(3, "x") is Role.READ
    assert Grants([Grant(Role.READ, pattern="fraud")], holder=7).readable == ReadFilter(
        exact=("fraud",)
    )
