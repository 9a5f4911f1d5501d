"""What holds a version against retention: the SQL rules prune and gc share.

A version is *anchored* when something users rely on points at it: an alias, the
``Staging`` or ``Production`` stage (of a live version), or a live deployment (one not
retired) serving it, whatever state its model is in (a deleted model can be restored).

A version is *held by lineage* when an anchored version descends from it through parent
edges whose relation is not ``retrain``, at most ``MAX_DEPTH`` edges away, in any model:
an adapter, a quantization, a distillation or a merge is useless without its base, while a
retrain stands on its own (and following retrains would keep every version of a retrained
model for ever). The walk goes down from the candidates, in one recursive query (both
dialects): a model whose versions have no children costs one index probe per version, and
the depth bounds the rest, as it bounds the lineage graph's queries. Versions on the way
count whatever their state: a soft-deleted link still joins the chain (it can be
restored), a purged one has taken its edges with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, literal_column, or_, select

from cairn.domain.lineage import MAX_DEPTH
from cairn.domain.models import Stage
from cairn.store.metadata.schema import aliases, deployments, lineage_inputs, model_versions

L = lineage_inputs
_STAGES = (Stage.STAGING.value, Stage.PRODUCTION.value)
_NOT_NEEDED = "retrain"  # the one relation whose child does not need its parent


def anchored(v: FromClause) -> ColumnElement[bool]:
    """Whether the version row ``v`` (``model_versions`` or an alias of it) carries an
    alias, is a live version in ``Staging`` or ``Production``, or is served by a live
    deployment."""
    aliased = (
        select(aliases.c.version)
        .where(aliases.c.model_id == v.c.model_id, aliases.c.version == v.c.version)
        .exists()
    )
    deployed = (  # a retired deployment's version is NULL: it matches nothing
        select(deployments.c.id)
        .where(deployments.c.model_id == v.c.model_id, deployments.c.version == v.c.version)
        .exists()
    )
    staged = v.c.stage.in_(_STAGES) & v.c.deleted_at.is_(None)
    return aliased | staged | deployed


def _needed(edge: FromClause) -> ColumnElement[bool]:
    """A parent edge whose child needs the parent (an unknown relation counts as needed)."""
    return or_(edge.c.qualifier.is_(None), edge.c.qualifier != _NOT_NEEDED)


def held_by_lineage(roots: Select[Any]) -> Select[tuple[int]]:
    """The ids among ``roots`` (a select of version ids) that an anchored version descends
    from through needed parent edges, at most ``MAX_DEPTH`` of them."""
    walk = (
        select(
            L.c.parent_version_id.label("root"),
            L.c.version_id.label("vid"),
            literal_column("1").label("depth"),
        )
        .where(L.c.parent_version_id.in_(roots), _needed(L))
        .cte("lineage_walk", recursive=True)
    )
    step = L.alias("step")
    walk = walk.union(
        select(walk.c.root, step.c.version_id, walk.c.depth + literal_column("1"))
        .select_from(walk)
        .join(step, step.c.parent_version_id == walk.c.vid)
        .where(_needed(step), walk.c.depth < MAX_DEPTH)
    )
    child = model_versions.alias("descendant")
    return select(walk.c.root).join(child, child.c.id == walk.c.vid).where(anchored(child))


def held(v: FromClause, roots: Select[Any]) -> ColumnElement[bool]:
    """Whether the version row ``v`` is anchored or held by lineage; ``roots`` selects the
    ids of the versions asked about (``v``'s among them), where the walk starts."""
    return anchored(v) | v.c.id.in_(held_by_lineage(roots))
