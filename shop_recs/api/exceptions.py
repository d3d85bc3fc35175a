"""Error handling: every client mistake becomes a 4xx with a message naming the field, and a
database that is down or restarting a 503 with Retry-After; never a 500, and never the text
of a database error (it quotes SQL)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from shop_recs.catalog.services import AlreadyExists
from shop_recs.catalog.validation import SURROGATE_MESSAGE

logger = logging.getLogger(__name__)

#: Seconds a client is asked to wait when the database is unavailable (a restart, a failover).
DATABASE_RETRY_AFTER = 5


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable; nothing was stored. Retry later."
    default_code = "database_unavailable"


def _client_error(exc: Exception) -> exceptions.APIException | None:
    """The API error a non-DRF exception stands for, or None when it is a server fault."""
    if isinstance(exc, AlreadyExists):
        return Conflict(str(exc))
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return exceptions.ValidationError(detail=detail)
    if isinstance(exc, DataError):
        # A value the database refused that validation let through: still the client's input,
        # but the driver's message quotes the SQL, so it stays in the log.
        logger.warning("database refused input: %s", exc)
        return exceptions.ValidationError(
            detail={"detail": ["A value is out of range or malformed for the database."]}
        )
    if isinstance(exc, OperationalError | InterfaceError):
        # Connection refused or lost (the server restarts, fails over): the request's
        # transaction did not commit, so a retry with the same idempotency keys is safe.
        logger.warning("database unavailable: %s", exc)
        return DatabaseUnavailable()
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(
            "Request body too large: form fields (files aside) may hold at most "
            f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        )
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return exceptions.ValidationError({"detail": [str(exc) or "Too many form fields."]})
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ValidationError({"detail": [str(exc) or "Bad request."]})
    if isinstance(exc, UnicodeEncodeError) and "surrogate" in str(exc):
        # The serializers refuse lone surrogates by field; this is the net under them.
        return exceptions.ValidationError({"detail": [SURROGATE_MESSAGE]})
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = _client_error(exc) or exc
    response = drf_exception_handler(exc, context)
    if isinstance(exc, DatabaseUnavailable) and response is not None:
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response
