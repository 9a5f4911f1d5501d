"""Request parameters as MLflow sends them: the query string for GET, a JSON body otherwise.

MLflow's client serialises a request message to proto-JSON. For GET it passes that dict to
``requests`` as query parameters (a list becomes repeated keys: ``stages=A&stages=B``); for
POST, PATCH and DELETE it sends the JSON body. ``Params`` reads either the same way and
answers MLflow's messages for a missing or mistyped parameter (400, never 5xx).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from cairn.errors import InvalidParameter

MAX_LIST_ITEMS = 1000
MAX_PAGE = 1000  # Cairn's page limit: larger requests are served a page at a time


def _missing(key: str) -> InvalidParameter:
    return InvalidParameter(f"Missing value for required parameter '{key}'.")


def _invalid(key: str, value: object, expected: str) -> InvalidParameter:
    shown = repr(value) if len(repr(value)) <= 100 else repr(value)[:100] + "…"
    return InvalidParameter(
        f"Invalid value {shown} for parameter '{key}' supplied: expected {expected}."
    )


@dataclass(frozen=True, slots=True)
class Params:
    """One request's parameters; ``from_query`` when every value is a list of strings."""

    data: Mapping[str, Any]
    from_query: bool = False

    def _scalar(self, key: str) -> Any:
        value = self.data.get(key)
        if self.from_query and isinstance(value, list):
            return value[-1] if value else None
        return value

    def text(self, key: str) -> str | None:
        """An optional string; absent and JSON ``null`` are ``None``."""
        value = self._scalar(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _invalid(key, value, "a string")
        return value

    def required(self, key: str, *, allow_empty: bool = False) -> str:
        """A required string; empty counts as missing unless ``allow_empty``."""
        value = self.text(key)
        if value is None or (value == "" and not allow_empty):
            raise _missing(key)
        return value

    def version(self, key: str = "version") -> str:
        """A required version: a string holding an integer (an integer is accepted too)."""
        value = self._scalar(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return self.required(key)

    def integer(self, key: str) -> int | None:
        """An optional int64: a JSON number, or a decimal string (proto-JSON and queries)."""
        value = self._scalar(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise _invalid(key, value, "an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        raise _invalid(key, value, "an integer")

    def flag(self, key: str, *, default: bool = False) -> bool:
        value = self._scalar(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _invalid(key, value, "true or false")

    def strings(self, key: str) -> list[str]:
        """A repeated string field (repeated query keys, or a JSON list)."""
        value = self.data.get(key)
        if value is None:
            return []
        if isinstance(value, str) and not self.from_query:
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _invalid(key, value, "a list of strings")
        if len(value) > MAX_LIST_ITEMS:
            raise InvalidParameter(f"'{key}' holds {len(value)} items; the limit is 1000")
        return list(value)

    def tags(self, key: str = "tags") -> dict[str, str]:
        """``[{"key": k, "value": v}, …]`` → ``{k: v}`` (a later duplicate key wins)."""
        value = self.data.get(key)
        if value is None:
            return {}
        if self.from_query or not isinstance(value, list):
            raise _invalid(key, value, 'a list of {"key": …, "value": …} objects')
        tags: dict[str, str] = {}
        for item in value[: MAX_LIST_ITEMS + 1]:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise _invalid(key, item, 'a {"key": …, "value": …} object')
            tag_value = item.get("value", "")
            if not isinstance(tag_value, str):
                raise _invalid(f"{key}.value", tag_value, "a string")
            tags[item["key"]] = tag_value
        return tags


def page_size(params: Params, default: int) -> int:
    """``max_results``, clamped to Cairn's page limit (a next_page_token says there is more).

    MLflow's client asks for 10 000 model versions by default; refusing that would break it.
    """
    size = params.integer("max_results")
    if size is None:
        return default
    if size < 1:
        raise InvalidParameter(
            f"Invalid value {size} for parameter 'max_results' supplied: "
            "it must be a positive integer."
        )
    return min(size, MAX_PAGE)


async def read_params(request: Request) -> Params:
    """GET reads the query string (lists as repeated keys); other methods a JSON object."""
    if request.method in ("GET", "HEAD"):
        query = request.query_params
        return Params({key: query.getlist(key) for key in query}, from_query=True)
    body = await request.body()
    if not body.strip():
        return Params({})
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than it recurses
        raise InvalidParameter("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidParameter("the request body must be a JSON object")
    return Params(data)


Body = Annotated[Params, Depends(read_params)]
"""The parameters of an MLflow request, as a route dependency."""


# -- the same parameters in the OpenAPI document ----------------------------------------


@dataclass(frozen=True, slots=True)
class Doc:
    """How one parameter is documented: its JSON schema, and whether it is required."""

    schema: dict[str, Any]
    required: bool = False


# One per reading method of ``Params`` above.
TEXT = Doc({"type": "string"})  # text()
REQUIRED = Doc({"type": "string", "minLength": 1}, required=True)  # required()
REQUIRED_EMPTY = Doc({"type": "string"}, required=True)  # required(allow_empty=True)
VERSION = Doc({"type": "string", "pattern": "^[0-9]+$"}, required=True)  # version()
INTEGER = Doc({"type": "integer"})  # integer()
FLAG = Doc({"type": "boolean"})  # flag()
STRINGS = Doc({"type": "array", "items": {"type": "string"}})  # strings()
TAGS = Doc(  # tags()
    {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["key"],
            "properties": {"key": {"type": "string"}, "value": {"type": "string"}},
        },
    }
)


def in_query(**fields: Doc) -> dict[str, Any]:
    """``openapi_extra`` of a GET route: its parameters in the query string."""
    return {
        "parameters": [
            {"name": name, "in": "query", "required": doc.required, "schema": doc.schema}
            for name, doc in fields.items()
        ]
    }


def in_body(**fields: Doc) -> dict[str, Any]:
    """``openapi_extra`` of a POST, PATCH or DELETE route: its parameters in a JSON body."""
    schema = {
        "type": "object",
        "properties": {name: doc.schema for name, doc in fields.items()},
        "required": [name for name, doc in fields.items() if doc.required],
    }
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": bool(schema["required"]), "content": content}}
