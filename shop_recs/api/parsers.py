"""A JSON parser that bounds the body size and rejects non-standard numbers (NaN, Infinity).

DRF's own JSONParser reads the request stream directly and so bypasses Django's
DATA_UPLOAD_MAX_MEMORY_SIZE; this one enforces the plugin's MAX_JSON_BODY_BYTES.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from shop_recs.api.exceptions import PayloadTooLarge
from shop_recs.conf import recs_settings


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class LimitedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = recs_settings.MAX_JSON_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"JSON body larger than {limit} bytes.")
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            return json.loads(raw.decode(encoding), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
