"""MLflow's scoring protocol, read: a JSON body → ``(columns, rows)`` for a ``Predictor``.

One of ``dataframe_split`` (``{"columns": [...], "data": [[...], ...]}``),
``dataframe_records`` (``[{"col": value, ...}, ...]``), ``instances`` (rows, or records)
or ``inputs`` (rows, or an object of named tensors); ``params`` is accepted and ignored.
"""

from __future__ import annotations

from typing import Any

from cairn.errors import InvalidParameter

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_invocation(body: Any) -> tuple[list[str] | None, Any]:
    if not isinstance(body, dict):
        raise InvalidParameter(f"the body must be a JSON object with one of {', '.join(FORMATS)}")
    given = [k for k in FORMATS if k in body]
    extra = sorted(set(body) - set(FORMATS) - {"params"})
    if extra:
        raise InvalidParameter(
            f"unknown field(s) {', '.join(extra)}; use one of {', '.join(FORMATS)}"
        )
    if len(given) != 1:
        raise InvalidParameter(
            f"give exactly one of {', '.join(FORMATS)} (got {', '.join(given) or 'none'})"
        )
    kind = given[0]
    value = body[kind]
    if kind == "dataframe_split":
        return _split(value)
    if kind == "dataframe_records":
        return _records(value)
    if kind == "inputs" and isinstance(value, dict):
        if not value:
            raise InvalidParameter("'inputs' is an empty object")
        return None, value
    if not isinstance(value, list) or not value:
        raise InvalidParameter(f"{kind!r} must be a non-empty list")
    if all(isinstance(r, dict) for r in value):
        return _records(value)
    return None, value


def _split(value: Any) -> tuple[list[str] | None, list[Any]]:
    if not isinstance(value, dict) or "data" not in value:
        raise InvalidParameter("'dataframe_split' must be an object with 'data' (and 'columns')")
    extra = sorted(set(value) - {"columns", "data", "index"})
    if extra:
        raise InvalidParameter(f"'dataframe_split' has unknown field(s) {', '.join(extra)}")
    data, columns = value["data"], value.get("columns")
    if not isinstance(data, list) or not data or not all(isinstance(r, list) for r in data):
        raise InvalidParameter("'dataframe_split.data' must be a non-empty list of rows")
    if columns is None:
        return None, data
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidParameter("'dataframe_split.columns' must be a list of names")
    for n, row in enumerate(data):
        if len(row) != len(columns):
            raise InvalidParameter(
                f"row {n} has {len(row)} values for {len(columns)} columns {columns}"
            )
    return list(columns), data


def _records(value: Any) -> tuple[list[str], list[Any]]:
    if not isinstance(value, list) or not value or not all(isinstance(r, dict) for r in value):
        raise InvalidParameter("records must be a non-empty list of objects")
    columns = list(value[0])
    for n, record in enumerate(value):
        if set(record) != set(columns):
            raise InvalidParameter(f"record {n} has fields {sorted(record)}, not {sorted(columns)}")
    return columns, [[record[c] for c in columns] for record in value]
