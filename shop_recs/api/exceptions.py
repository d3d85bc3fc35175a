"""Error handling: every client mistake becomes a 4xx with a message naming the field."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from shop_recs.catalog.services import AlreadyExists

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, AlreadyExists):
        exc = Conflict(str(exc))
    elif isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    elif isinstance(exc, DataError):
        # A value the database refused that validation let through: still the client's input.
        logger.warning("database refused input: %s", exc)
        exc = exceptions.ValidationError(
            detail={"detail": [f"A value was refused by the database: {exc}".strip()]}
        )
    return drf_exception_handler(exc, context)
