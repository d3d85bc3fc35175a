"""Query parameters of the serving endpoints, parsed without a DRF serializer when they are
plainly valid.

Similar items, search and recommendations are called by every product page; building and
running a DRF serializer costs more than the k-NN statement behind them. :func:`query_values`
parses the common, well-formed cases directly into exactly what the endpoint's serializer
would return, and hands anything else (a bad value, an unknown parameter, an unusual spelling
such as ``+5`` or ``1e2``) to the serializer, so every error and every edge case keeps the
serializer's behaviour and messages (``tests/test_query_params.py`` compares both).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from shop_recs.catalog.validation import has_surrogate
from shop_recs.conf import recs_settings


class _Fallback(Exception):
    """This value needs the serializer (it may be invalid, or valid in a rarer spelling)."""


# DRF BooleanField's spellings (its TRUE_VALUES / FALSE_VALUES that a query string can hold)
_TRUE = frozenset({"t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On",
                   "ON", "1"})  # fmt: skip
_FALSE = frozenset({"f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off",
                    "OFF", "0"})  # fmt: skip
_INT = re.compile(r"[0-9]{1,6}")
# DecimalField(max_digits=12, decimal_places=2): at most 10 whole and 2 decimal digits
_DECIMAL = re.compile(r"-?[0-9]{1,10}(?:\.[0-9]{1,2})?")
_CENT = Decimal("0.01")

Parser = Callable[[str], Any]


def char(max_length: int) -> Parser:
    """CharField(max_length=...): trimmed, not blank."""

    def parse(value: str) -> str:
        value = value.strip()
        if not value or len(value) > max_length:
            raise _Fallback
        return value

    return parse


def boolean(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _Fallback


def decimal(value: str) -> Decimal:
    value = value.strip()
    if not _DECIMAL.fullmatch(value):
        raise _Fallback
    return Decimal(value).quantize(_CENT)


def k(value: str) -> int:
    value = value.strip()
    if not _INT.fullmatch(value):
        raise _Fallback
    number = int(value)
    if not 1 <= number <= int(recs_settings.SIMILAR_MAX_K):
        raise _Fallback
    return number


def choice(*choices: str) -> Parser:
    allowed = frozenset(choices)

    def parse(value: str) -> str:
        if value not in allowed:
            raise _Fallback
        return value

    return parse


def exclude(value: str) -> list[str]:
    """``exclude``: comma-separated external ids (SimilarityFilterSerializer.validate_exclude)."""
    return [v.strip() for v in char(2000)(value).split(",") if v.strip()]


#: The filter parameters of every serving list (SimilarityFilterSerializer), and their defaults.
FILTERS: dict[str, Parser] = {
    "k": k,
    "category": char(200),
    "brand": char(200),
    "in_stock": boolean,
    "price_min": decimal,
    "price_max": decimal,
    "exclude": exclude,
}
FILTER_DEFAULTS: dict[str, Any] = {"k": 10, "in_stock": True}


def fast_values(
    params: Mapping[str, Any],
    fields: Mapping[str, Parser],
    defaults: Mapping[str, Any],
    required: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """The parsed parameters, or None when the serializer must decide. ``params`` is a
    QueryDict (its ``get`` is the last value, as a serializer reads it) or a plain dict."""
    values: dict[str, Any] = dict(defaults)
    try:
        for name in params:
            parse = fields.get(name)
            if parse is None:
                raise _Fallback  # the serializer ignores it, or reports a surrogate in it
            value = params.get(name)
            if not isinstance(value, str) or "\x00" in value or has_surrogate(value):
                raise _Fallback
            values[name] = parse(value)
    except _Fallback:
        return None
    if any(name not in values for name in required):
        return None
    return values


def query_values(
    request: Any,
    serializer_class: type,
    fields: Mapping[str, Parser],
    defaults: Mapping[str, Any],
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The endpoint's validated query: parsed directly when plainly valid, else by
    ``serializer_class`` (which raises its 400 with the bad parameter named)."""
    values = fast_values(request.query_params, fields, defaults, required)
    if values is not None:
        return values
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)
