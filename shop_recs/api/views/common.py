"""What the views of every resource share: error responses in the schema, path ids."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.exceptions import NotFound

from shop_recs.catalog import selectors
from shop_recs.catalog.models import Item

ERROR = OpenApiResponse(OpenApiTypes.OBJECT, description="Error: messages by field or 'detail'.")


COMMON_ERRORS = {401: ERROR, 403: ERROR, 413: ERROR, 429: ERROR}


READ_ERRORS = {401: ERROR, 403: ERROR, 404: ERROR, 429: ERROR}


def _external_id_param(name: str = "external_id") -> OpenApiParameter:
    return OpenApiParameter(name, str, OpenApiParameter.PATH, pattern=r"^[^/]+$")


def _clean_path_id(value: str) -> str:
    # A path id the database could never hold is simply not found (and never reaches SQL).
    if not value or len(value) > 255 or "\x00" in value:
        raise NotFound("Not found.")
    return value


def _get_item(external_id: str) -> Item:
    item = selectors.item_get(external_id=_clean_path_id(external_id))
    if item is None:
        raise NotFound(f"No item with external_id {external_id!r}.")
    return item
