"""Event ingestion from a store's back end (tokens), and from shoppers' browsers (``track.js``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from shop_recs.api import serializers as s
from shop_recs.api.base import PluginAPIView, extend_schema
from shop_recs.api.parsers import LimitedJSONParser
from shop_recs.api.views.common import COMMON_ERRORS, ERROR
from shop_recs.catalog import services
from shop_recs.catalog.models import Interaction
from shop_recs.conf import recs_settings
from shop_recs.storefront import tracking


class EventIngestView(PluginAPIView):
    """Record one event, or a batch of up to EVENTS_MAX_BATCH under ``events``.

    Each event stands alone: a bad one is reported with its index and errors while the others
    are stored. A repeated ``idempotency_key`` stores nothing and returns the first result.
    """

    write_model = Interaction

    @extend_schema(
        operation_id="events_create",
        request=PolymorphicProxySerializer(
            component_name="EventIngestRequest",
            serializers=[s.EventInputSerializer, s.EventBatchInputSerializer],
            resource_type_field_name=None,
        ),
        responses={
            200: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="EventIngestResult",
                    serializers=[s.EventSingleOutputSerializer, s.EventBatchOutputSerializer],
                    resource_type_field_name=None,
                ),
                description="A repeated single event (status duplicate), or a batch with "
                "nothing rejected.",
            ),
            201: OpenApiResponse(s.EventSingleOutputSerializer, description="Event stored."),
            207: OpenApiResponse(
                s.EventBatchOutputSerializer, description="Batch partly rejected: see results."
            ),
            400: ERROR,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise ValidationError({"detail": ['Send one event object, or {"events": [...]}.']})
        if "events" in body:
            return self._batch(body)
        data = s.EventInputSerializer(data=body)
        data.is_valid(raise_exception=True)
        (outcome,) = services.interactions_record(
            events=[services.EventIn(**_event_kwargs(data.validated_data))]
        )
        if outcome.status == "rejected":
            raise ValidationError(outcome.errors)
        out = {
            "status": outcome.status,
            "event": s.InteractionOutputSerializer(outcome.interaction).data,
        }
        code = status.HTTP_201_CREATED if outcome.status == "created" else status.HTTP_200_OK
        return Response(out, status=code)

    def _batch(self, body: dict[str, Any]) -> Response:
        events = body["events"]
        limit = s.max_batch()
        if not isinstance(events, list) or not events:
            raise ValidationError({"events": ["Must be a non-empty list of event objects."]})
        if len(events) > limit:
            raise ValidationError(
                {"events": [f"At most {limit} events per batch; got {len(events)}."]}
            )
        results: list[dict[str, Any]] = [{} for _ in events]
        valid: list[tuple[int, services.EventIn]] = []
        # One serializer validates every event: building a serializer per event costs ~4x more.
        checker = s.EventInputSerializer()
        for index, raw in enumerate(events):
            if not isinstance(raw, dict):
                results[index] = _result(
                    index, "rejected", errors={"event": ["Must be an object."]}
                )
                continue
            try:
                values = checker.run_validation(raw)
            except ValidationError as exc:
                results[index] = _result(index, "rejected", errors=_flatten(exc.detail))
                continue
            valid.append((index, services.EventIn(**_event_kwargs(values))))
        outcomes = services.interactions_record(events=[e for _, e in valid])
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            pk = outcome.interaction.pk if outcome.interaction else None
            results[index] = _result(index, outcome.status, pk=pk, errors=outcome.errors)
        counts = {
            name: sum(r["status"] == name for r in results)
            for name in ("created", "duplicate", "rejected")
        }
        out = {
            "received": len(events),
            "created": counts["created"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
            "results": results,
        }
        if counts["rejected"] == 0:
            code = status.HTTP_200_OK
        elif counts["rejected"] == len(events):
            code = status.HTTP_400_BAD_REQUEST
        else:
            code = status.HTTP_207_MULTI_STATUS
        return Response(out, status=code)


class ShopperSessionAuthentication(SessionAuthentication):
    """The shopper's own browser session, and nothing else (no tokens: the identity of a
    tracked event is the session or login, never something a caller presents). CSRF is
    enforced for anonymous shoppers too (DRF checks it only for logged-in users), so another
    site cannot plant events in a visitor's history."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        self.enforce_csrf(request)
        user = getattr(request._request, "user", None)
        if not user or not user.is_active:
            return None
        return (user, None)


class ShopperSessionScheme(OpenApiAuthenticationExtension):
    target_class = ShopperSessionAuthentication
    name = "shopperSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}


class TrackView(PluginAPIView):
    """Events of the current shopper from the browser (``static/shop_recs/track.js``): one
    ``{"event", "item_id", "key"}`` or ``{"events": [...]}``. No token: the shopper is the
    request's session or login. Send the CSRF token (cookie ``csrftoken``, header
    ``X-CSRFToken``), anonymous shoppers too. Unknown items are answered 400 with their ids;
    the other events are stored."""

    authentication_classes = [ShopperSessionAuthentication]
    permission_classes = [AllowAny]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="track_create",
        request=PolymorphicProxySerializer(
            component_name="TrackRequest",
            serializers=[s.TrackEventInputSerializer, s.TrackBatchInputSerializer],
            resource_type_field_name=None,
        ),
        responses={
            200: s.TrackOutputSerializer,
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="Bad input (messages by field), or unknown items: item_id names "
                "them, unknown_item_ids lists them, recorded/duplicates count the others.",
            ),
            403: OpenApiResponse(OpenApiTypes.OBJECT, description="CSRF token missing or wrong."),
            413: ERROR,
            429: ERROR,
        },
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise ValidationError({"detail": ['Send one event object, or {"events": [...]}.']})
        if "events" in body:
            limit = int(recs_settings.TRACK_MAX_BATCH)
            if isinstance(body["events"], list) and len(body["events"]) > limit:
                raise ValidationError({"events": [f"At most {limit} events per batch."]})
            data = s.TrackBatchInputSerializer(data=body)
            data.is_valid(raise_exception=True)
            events = data.validated_data["events"]
        else:
            data = s.TrackEventInputSerializer(data=body)
            data.is_valid(raise_exception=True)
            events = [data.validated_data]
        result = tracking.track_client_events(
            request,
            [
                tracking.ClientEvent(
                    e["event"],
                    e["item_id"],
                    e.get("key") or None,
                    list_id=e.get("list_id") or None,
                    position=e.get("position"),
                )
                for e in events
            ],
        )
        out = {"recorded": result.recorded, "duplicates": result.duplicates}
        if result.unknown_item_ids or result.errors:
            errors: dict[str, Any] = {}
            if result.unknown_item_ids:
                errors["item_id"] = [f"Unknown item(s): {', '.join(result.unknown_item_ids)}."]
                errors["unknown_item_ids"] = result.unknown_item_ids
            if result.errors:
                errors["events"] = {str(i): e for i, e in result.errors.items()}
            return Response({**errors, **out}, status=status.HTTP_400_BAD_REQUEST)
        return Response(out)


def _event_kwargs(validated: dict[str, Any]) -> dict[str, Any]:
    values = dict(validated)
    values["context"] = values.get("context") or {}
    values["session_id"] = values.get("session_id") or ""
    return values


def _result(
    index: int, status_: str, *, pk: int | None = None, errors: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"index": index, "status": status_, "id": pk, "errors": errors or {}}


def _flatten(errors: Any) -> dict[str, list[str]]:
    return {
        field: [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
        for field, msgs in errors.items()
    }
