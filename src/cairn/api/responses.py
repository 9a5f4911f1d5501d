"""``JSONResponse`` encoded with orjson: the one JSON encoder of the API's answers.

Starlette's own encodes with the standard library: 2.5 ms for a version of 3,000 files
here, 4.6 µs for a version of none; orjson takes 0.13 ms and 0.4 µs. The output is the
same compact UTF-8 JSON. Keys that are not strings become strings, as with the standard
library. Non-finite floats never reach it: metrics and gate thresholds must be finite
(``domain/validation.py``), and orjson would write them as null.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
