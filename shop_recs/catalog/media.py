"""URLs of stored images: the one helper the API, the widgets and the admin use."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage


def image_url(image: str | None, request: Any = None) -> str:
    """The URL of an image given as a stored file's name or as its source URL ("" for none).

    A file's URL comes from ``default_storage``; with a ``request`` a relative URL is made
    absolute (the REST API's links must work from another origin).
    """
    if not image:
        return ""
    if image.startswith(("http://", "https://")):
        return image
    url = default_storage.url(image)
    return request.build_absolute_uri(url) if request is not None else url
