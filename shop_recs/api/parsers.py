"""A JSON parser that bounds the body size and depth and rejects non-standard numbers (NaN,
Infinity).

DRF's own JSONParser reads the request stream directly and so bypasses Django's
DATA_UPLOAD_MAX_MEMORY_SIZE; this one enforces the plugin's MAX_JSON_BODY_BYTES. No plugin
body nests deeper than a few levels (a batch of events with an 8-level ``context`` is about
11), so anything deeper than :data:`MAX_BODY_DEPTH` is refused here, before a serializer or an
encoder recurses into it.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from shop_recs.api.exceptions import PayloadTooLarge
from shop_recs.conf import recs_settings

MAX_BODY_DEPTH = 32


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_depth(value: Any) -> int:
    """How deep objects and arrays nest in ``value`` (a scalar is 0). Iterative: safe at any
    depth."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_BODY_DEPTH:
            break
        stack.extend((child, depth) for child in children)
    return deepest


def _too_deep() -> ParseError:
    return ParseError(f"JSON nested deeper than {MAX_BODY_DEPTH} levels.")


class LimitedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = recs_settings.MAX_JSON_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"JSON body larger than {limit} bytes.")
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_reject_constant)
        except RecursionError:
            # the decoder recurses per level; Python stops it near 1,000 levels
            raise _too_deep() from None
        except (ValueError, UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        if json_depth(data) > MAX_BODY_DEPTH:
            raise _too_deep()
        return data
