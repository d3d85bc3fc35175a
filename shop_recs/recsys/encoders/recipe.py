"""The one documented way an item's fields become the text that the text encoder sees."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# Bump whenever item_text's output could change: stored text vectors are keyed by it.
RECIPE_VERSION = "1"

_SPACE = re.compile(r"\s+")
_END = (".", "!", "?")


def _clean(value: Any) -> str:
    return _SPACE.sub(" ", str(value)).strip()


def _sentence(text: str) -> str:
    return text if text.endswith(_END) else text + "."


def _scalar(value: Any) -> str:
    """Text for a scalar attribute value; ``""`` for anything else (lists, dicts, None)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float | str):
        return _clean(value)
    return ""


def item_text(
    *,
    title: str,
    category: str = "",
    brand: str = "",
    description: str = "",
    attributes: Mapping[str, Any] | None = None,
    attribute_keys: Sequence[str] | None = None,
    max_chars: int = 2000,
) -> str:
    """Build the text encoded for one item (recipe version ``RECIPE_VERSION``).

    Recipe, in this order, parts that are empty after cleaning are skipped::

        "{title}. Category: {category}. Brand: {brand}. {k1}: {v1}; {k2}: {v2}. {description}"

    - every value has runs of whitespace (newlines, tabs) collapsed to one space and is stripped;
    - title, category, brand and the attribute list each end with ``"."``, unless the text already
      ends with ``.``, ``!`` or ``?``; the description is kept as written;
    - attributes: only scalar values (str, int, float, bool; bools as ``yes``/``no``), non-empty.
      With ``attribute_keys`` they are taken in that order and other keys are ignored; with
      ``None`` all scalar attributes are used, sorted by key. Underscores in keys become spaces
      (``fit_type`` -> ``fit type``), which reads better to a language model;
    - the result is cut to ``max_chars`` characters; a word cut in half is dropped.

    Title first because encoders truncate long inputs (all-MiniLM-L6-v2 at 256 tokens): the
    fields that best identify a product must survive; long free-text descriptions go last.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    parts: list[str] = []
    if title := _clean(title):
        parts.append(_sentence(title))
    if category := _clean(category):
        parts.append(_sentence(f"Category: {category}"))
    if brand := _clean(brand):
        parts.append(_sentence(f"Brand: {brand}"))

    attrs = attributes or {}
    keys = sorted(attrs, key=str) if attribute_keys is None else list(attribute_keys)
    pairs = []
    for key in keys:
        value = _scalar(attrs.get(key))
        name = _clean(str(key).replace("_", " "))
        if value and name:
            pairs.append(f"{name}: {value}")
    if pairs:
        parts.append(_sentence("; ".join(pairs)))

    if description := _clean(description):
        parts.append(description)

    text = " ".join(parts)
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    if not text[max_chars].isspace() and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip()
