"""Input checks shared by every write path (REST, import, admin): the database must never see
a value it would reject with a 500 (NUL bytes, oversized JSON), and images must be real,
bounded images."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from PIL import Image, UnidentifiedImageError

from shop_recs.conf import recs_settings

MAX_JSON_DEPTH = 8

#: No timestamp (an event's time, a filter) lies before this: earlier ones are typos or
#: placeholders such as 0001-01-01, and near year 1 an offset moves a value out of range.
EARLIEST_TIMESTAMP = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

SURROGATE_MESSAGE = (
    "Contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode text: send the "
    "character itself or its UTF-16 pair."
)

#: The one rule for the external ids of items and customers (they travel in URL paths).
EXTERNAL_ID_PATTERN = r"^[^\s/\\?#%\x00-\x1f\x7f]{1,255}$"
EXTERNAL_ID_RULE = "1-255 characters without whitespace, control characters or any of / \\ ? # %"
EXTERNAL_ID = RegexValidator(EXTERNAL_ID_PATTERN, f"Use {EXTERNAL_ID_RULE.replace('%', '%%')}.")


def check_external_id(value: object) -> str:
    """``value`` as an external id (stripped), or ValueError saying what the rule is."""
    text = "" if value is None else str(value).strip()
    try:
        EXTERNAL_ID(text)
    except ValidationError:
        raise ValueError(f"{text!r} is not a valid external id: use {EXTERNAL_ID_RULE}") from None
    return text


def has_surrogate(text: str) -> bool:
    """True when ``text`` holds a lone surrogate: JSON's ``"\\ud800"`` parses to one, and no
    UTF-8 encoder (PostgreSQL's driver included) can write it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def surrogate_fields(data: Any) -> list[str]:
    """The top-level keys of a JSON object whose key or value (at any depth) holds a lone
    surrogate, in order; ``[""]`` when ``data`` is not an object but holds one. Iterative, so
    any depth is safe."""
    if not isinstance(data, dict):
        return [""] if _any_surrogate(data) else []
    return [
        str(key) if not (isinstance(key, str) and has_surrogate(key)) else "non_field_errors"
        for key, value in data.items()
        if (isinstance(key, str) and has_surrogate(key)) or _any_surrogate(value)
    ]


def _any_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if has_surrogate(node):
                return True
        elif isinstance(node, dict):
            for key, child in node.items():
                if isinstance(key, str) and has_surrogate(key):
                    return True
                stack.append(child)
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return False


def check_json_value(value: Any, *, field: str) -> None:
    """Reject JSON PostgreSQL cannot store (NUL characters, lone surrogates) or that is too
    deep or too large."""

    def walk(node: Any, depth: int) -> None:
        if depth > MAX_JSON_DEPTH:
            raise ValidationError({field: [f"Nested deeper than {MAX_JSON_DEPTH} levels."]})
        if isinstance(node, str):
            if "\x00" in node:
                raise ValidationError({field: ["NUL characters are not allowed."]})
            if has_surrogate(node):
                raise ValidationError({field: [SURROGATE_MESSAGE]})
        elif isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str) or "\x00" in key:
                    raise ValidationError({field: ["Keys must be strings without NUL."]})
                if has_surrogate(key):
                    raise ValidationError({field: [f"A key: {SURROGATE_MESSAGE}"]})
                walk(child, depth + 1)
        elif isinstance(node, list):
            for child in node:
                walk(child, depth + 1)
        elif isinstance(node, float) and (node != node or node in (float("inf"), float("-inf"))):
            raise ValidationError({field: ["NaN and infinite numbers are not allowed."]})

    walk(value, 0)
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > recs_settings.MAX_JSON_FIELD_BYTES:
        raise ValidationError(
            {field: [f"Too large: {size} bytes (limit {recs_settings.MAX_JSON_FIELD_BYTES})."]}
        )


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    size_bytes: int
    checksum: str
    content_type: str


def inspect_image(stream: IO[bytes], *, field: str = "file") -> ImageInfo:
    """Check that ``stream`` holds one decodable image within the configured limits.

    The pixel count is checked from the header before any decoding, so a decompression bomb is
    refused without allocating its pixels.
    """
    max_bytes = recs_settings.MAX_IMAGE_BYTES
    stream.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(1024 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise ValidationError({field: [f"Image file is larger than {max_bytes} bytes."]})
        digest.update(chunk)
    if size == 0:
        raise ValidationError({field: ["The image file is empty."]})
    stream.seek(0)
    try:
        with Image.open(stream) as img:
            fmt = (img.format or "").upper()
            width, height = img.size
            if fmt not in recs_settings.IMAGE_FORMATS:
                allowed = ", ".join(recs_settings.IMAGE_FORMATS)
                raise ValidationError(
                    {field: [f"Unsupported image format {fmt or 'unknown'}; allowed: {allowed}."]}
                )
            if width * height > recs_settings.MAX_IMAGE_PIXELS:
                raise ValidationError(
                    {
                        field: [
                            f"Image is too large: {width}x{height} pixels "
                            f"(limit {recs_settings.MAX_IMAGE_PIXELS} pixels)."
                        ]
                    }
                )
            mime = Image.MIME.get(fmt, "application/octet-stream")
            if fmt == "JPEG":
                # DCT scaling: every byte is still parsed (truncation is caught) but the pixels
                # come out at 1/8 of the size, so a 36-megapixel upload does not need ~100 MB
                # in the web process
                img.draft(None, (max(1, width // 8), max(1, height // 8)))
            img.load()  # decodes: truncated or corrupt data fails here, not in a worker
    except ValidationError:
        raise
    except Image.DecompressionBombError as exc:
        raise ValidationError({field: [f"Image is too large (decompression bomb): {exc}"]}) from exc
    except UnidentifiedImageError as exc:
        # (Pillow's message names the stream object: "<InMemoryUploadedFile: ...>")
        allowed = ", ".join(recs_settings.IMAGE_FORMATS)
        raise ValidationError(
            {field: [f"Not a valid image: no image format recognised (accepted: {allowed})."]}
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValidationError({field: [f"The image is corrupt or truncated: {exc}"]}) from exc
    finally:
        stream.seek(0)
    return ImageInfo(
        format=fmt,
        width=width,
        height=height,
        size_bytes=size,
        checksum=digest.hexdigest(),
        content_type=mime,
    )
