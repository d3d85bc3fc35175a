"""REST views: one operation per method, no ORM queries or business logic here.

Reads go through ``shop_recs.catalog.selectors``, writes through ``shop_recs.catalog.services``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from django.views.defaults import server_error as default_server_error
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import generics, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from shop_recs.api import serializers as s
from shop_recs.api.base import PluginAPIView
from shop_recs.api.parsers import LimitedJSONParser
from shop_recs.api.permissions import ReadPublicWriteAuthenticated
from shop_recs.catalog import recommend, selectors, served, services, tracking
from shop_recs.catalog.conf import recs_settings
from shop_recs.catalog.models import Customer, Interaction, Item, ItemImage
from shop_recs.catalog.queries import EncoderUnavailable, search_query_vectors

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


class ItemPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    def get_page_size(self, request: Request) -> int:
        self.page_size = recs_settings.PAGE_SIZE
        self.max_page_size = recs_settings.MAX_PAGE_SIZE
        return super().get_page_size(request)


class ItemListCreateView(PluginAPIView, generics.ListAPIView):
    """List items (public, filtered, paginated) and create one (token, add permission)."""

    serializer_class = s.ItemOutputSerializer
    pagination_class = ItemPagination
    filter_backends: list[Any] = []
    write_model = Item

    def get_queryset(self) -> Any:
        return selectors.item_list(filters=self.request.query_params)

    @extend_schema(
        operation_id="items_list",
        parameters=[s.ItemListQuerySerializer],
        responses={200: s.ItemOutputSerializer(many=True), 400: ERROR, **READ_ERRORS},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="items_create",
        request=s.ItemCreateInputSerializer,
        responses={201: s.ItemOutputSerializer, 400: ERROR, 409: ERROR, **COMMON_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = s.ItemCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        item = services.item_create(**data.validated_data)
        item = selectors.item_get(external_id=item.external_id)
        out = s.ItemOutputSerializer(item, context={"request": request})
        return Response(out.data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[_external_id_param()])
class ItemDetailView(PluginAPIView):
    write_model = Item

    @extend_schema(
        operation_id="items_retrieve", responses={200: s.ItemOutputSerializer, **READ_ERRORS}
    )
    def get(self, request: Request, external_id: str) -> Response:
        item = _get_item(external_id)
        return Response(s.ItemOutputSerializer(item, context={"request": request}).data)

    @extend_schema(
        operation_id="items_update",
        request=s.ItemUpdateInputSerializer,
        responses={200: s.ItemOutputSerializer, 400: ERROR, 404: ERROR, **COMMON_ERRORS},
    )
    def put(self, request: Request, external_id: str) -> Response:
        return self._update(request, external_id, partial=False)

    @extend_schema(
        operation_id="items_partial_update",
        request=s.ItemUpdateInputSerializer(partial=True),
        responses={200: s.ItemOutputSerializer, 400: ERROR, 404: ERROR, **COMMON_ERRORS},
    )
    def patch(self, request: Request, external_id: str) -> Response:
        return self._update(request, external_id, partial=True)

    def _update(self, request: Request, external_id: str, *, partial: bool) -> Response:
        item = _get_item(external_id)
        data = s.ItemUpdateInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        services.item_update(item=item, data=dict(data.validated_data))
        item = _get_item(external_id)
        return Response(s.ItemOutputSerializer(item, context={"request": request}).data)

    @extend_schema(operation_id="items_destroy", responses={204: None, 404: ERROR, **COMMON_ERRORS})
    def delete(self, request: Request, external_id: str) -> Response:
        services.item_delete(item=_get_item(external_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[_external_id_param()])
class ItemImageListCreateView(PluginAPIView):
    """An item's images: list, upload a file (multipart) or register a URL (JSON)."""

    write_model = ItemImage
    write_action = "add"
    parser_classes = [LimitedJSONParser, MultiPartParser]

    @extend_schema(
        operation_id="items_images_list",
        responses={200: s.ItemImageOutputSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request: Request, external_id: str) -> Response:
        item = _get_item(external_id)
        return Response(
            s.ItemImageOutputSerializer(
                item.images.all(), many=True, context={"request": request}
            ).data
        )

    @extend_schema(
        operation_id="items_images_create",
        request={
            "multipart/form-data": s.ImageUploadInputSerializer,
            "application/json": s.ImageUrlInputSerializer,
        },
        responses={201: s.ItemImageOutputSerializer, 400: ERROR, 404: ERROR, **COMMON_ERRORS},
    )
    def post(self, request: Request, external_id: str) -> Response:
        item = _get_item(external_id)
        if request.content_type.startswith("multipart/"):
            data = s.ImageUploadInputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            upload = data.validated_data["file"]
            image = services.item_image_add_file(
                item=item,
                upload=upload,
                filename=upload.name,
                position=data.validated_data.get("position"),
            )
        else:
            data = s.ImageUrlInputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            image = services.item_image_add_url(
                item=item,
                url=data.validated_data["url"],
                position=data.validated_data.get("position"),
            )
        out = s.ItemImageOutputSerializer(image, context={"request": request})
        return Response(out.data, status=status.HTTP_201_CREATED)


@extend_schema(
    parameters=[_external_id_param(), OpenApiParameter("image_id", int, OpenApiParameter.PATH)]
)
class ItemImageDetailView(PluginAPIView):
    write_model = ItemImage

    def _get_image(self, external_id: str, image_id: str) -> ItemImage:
        item = _get_item(external_id)
        if not image_id.isascii() or not image_id.isdigit() or len(image_id) > 18:
            raise NotFound(f"Item {external_id!r} has no image {image_id!r}.")
        image = selectors.item_image_get(item=item, image_id=int(image_id))
        if image is None:
            raise NotFound(f"Item {external_id!r} has no image {image_id}.")
        return image

    @extend_schema(
        operation_id="items_images_retrieve",
        responses={200: s.ItemImageOutputSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, external_id: str, image_id: str) -> Response:
        image = self._get_image(external_id, image_id)
        return Response(s.ItemImageOutputSerializer(image, context={"request": request}).data)

    @extend_schema(
        operation_id="items_images_destroy", responses={204: None, 404: ERROR, **COMMON_ERRORS}
    )
    def delete(self, request: Request, external_id: str, image_id: str) -> Response:
        services.item_image_delete(image=self._get_image(external_id, image_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _similarity_filters(values: dict[str, Any]) -> selectors.SimilarFilters:
    return selectors.SimilarFilters(
        category=values.get("category"),
        brand=values.get("brand"),
        in_stock=values.get("in_stock", True),
        price_min=values.get("price_min"),
        price_max=values.get("price_max"),
        exclude=tuple(values.get("exclude") or ()),
    )


@extend_schema(parameters=[_external_id_param()])
class ItemSimilarView(PluginAPIView):
    """Items similar to this one in a space (text, image, content, or the model's hybrid)."""

    @extend_schema(
        operation_id="items_similar",
        parameters=[s.SimilarQuerySerializer],
        responses={
            200: s.SimilarOutputSerializer,
            400: ERROR,
            409: OpenApiResponse(
                OpenApiTypes.OBJECT, description="The item is not encoded in this space yet."
            ),
            **READ_ERRORS,
        },
    )
    def get(self, request: Request, external_id: str) -> Response:
        external_id = _clean_path_id(external_id)
        query = s.SimilarQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = query.validated_data
        space = values.get("space") or recommend.default_similar_space()
        try:
            if space == "hybrid":
                results = recommend.item_similar_hybrid(
                    external_id=external_id, k=values["k"], filters=_similarity_filters(values)
                )
            else:
                results = selectors.item_similar(
                    external_id=external_id,
                    space=space,
                    k=values["k"],
                    filters=_similarity_filters(values),
                )
        except selectors.NotEncoded as exc:
            return Response(
                {"detail": str(exc), "encoding": {"status": exc.status, "error": exc.error}},
                status=status.HTTP_409_CONFLICT,
            )
        if results is None:
            raise NotFound(f"No item with external_id {external_id!r}.")
        served.record("similar", [n.item.id for n in results])
        out = {
            "item_id": external_id,
            "space": space,
            "results": s.neighbours_data(results, request),
        }
        return Response(out)


class SearchView(PluginAPIView):
    """Semantic search: the query text is encoded and matched in the text space (and the image
    space when the configured encoder is joint, like CLIP)."""

    @extend_schema(
        operation_id="search",
        parameters=[s.SearchQuerySerializer],
        responses={200: s.SearchOutputSerializer, 400: ERROR, 503: ERROR, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = s.SearchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = query.validated_data
        try:
            query_vectors = search_query_vectors(values["q"])
        except EncoderUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        results = selectors.items_search(
            query_vectors=query_vectors, k=values["k"], filters=_similarity_filters(values)
        )
        served.record("search", [n.item.id for n in results])
        out = {
            "q": values["q"],
            "spaces": sorted(query_vectors),
            "results": s.neighbours_data(results, request),
        }
        return Response(out)


def _may_read_customer(request: Request, customer: Customer | None) -> bool:
    """Staff/tokens with ``view_customer``, or the shopper's own logged-in user."""
    user = request.user
    if not (user and user.is_authenticated):
        return False
    if user.has_perm("shop_recs_catalog.view_customer"):
        return True
    return customer is not None and customer.user_id == user.pk


class QueryPermission(ReadPublicWriteAuthenticated):
    """A POST that only reads (a recommendation query): the rules of reads apply."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if recs_settings.READ_REQUIRES_AUTH:
            return bool(request.user and request.user.is_authenticated)
        return True


def _recommendations_response(
    request: Request,
    result: recommend.RecommendationResult,
    *,
    customer_id: str | None,
    session_id: str | None,
    ignored: list[str],
) -> Response:
    served.record("recommendations", [r.item.id for r in result.results])
    return Response(
        {
            "customer_id": customer_id,
            "session_id": session_id,
            "model_version": result.model_version,
            "history": [h.external_id for h in result.history],
            "ignored_item_ids": ignored,
            "results": s.recommendations_data(result.results, request),
        }
    )


@extend_schema(parameters=[_external_id_param()])
class CustomerRecommendationsView(PluginAPIView):
    """Recommendations for a known shopper: their recent events through the active model,
    else content similarity to them, else popular items; each result says why."""

    @extend_schema(
        operation_id="customers_recommendations",
        parameters=[s.RecommendationQuerySerializer],
        responses={200: s.RecommendationOutputSerializer, 400: ERROR, **READ_ERRORS},
    )
    def get(self, request: Request, external_id: str) -> Response:
        external_id = _clean_path_id(external_id)
        customer = selectors.customer_get(external_id=external_id)
        if not _may_read_customer(request, customer):
            raise PermissionDenied("Reading a customer's recommendations needs view_customer.")
        if customer is None:
            raise NotFound(f"No customer with external_id {external_id!r}.")
        query = s.RecommendationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = query.validated_data
        result = recommend.recommendations(
            customer=customer,
            k=values["k"],
            filters=_similarity_filters(values),
            include_purchased=values["include_purchased"],
        )
        return _recommendations_response(
            request, result, customer_id=external_id, session_id=None, ignored=[]
        )


class RecommendationsView(PluginAPIView):
    """Recommendations for anonymous and new shoppers: a session id and/or the items viewed
    recently, optionally a known customer (that needs view_customer, or being that customer)."""

    permission_classes = [QueryPermission]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="recommendations_create",
        request=s.RecommendationRequestSerializer,
        responses={200: s.RecommendationOutputSerializer, 400: ERROR, **READ_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = s.RecommendationRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        customer = None
        customer_id = values.get("customer_id")
        if customer_id:
            customer = selectors.customer_get(external_id=customer_id)
            if not _may_read_customer(request, customer):
                raise PermissionDenied(
                    "Recommendations for a customer_id need view_customer (or that customer's "
                    "own login); anonymous shoppers send session_id and recent_item_ids."
                )
        session_id = values.get("session_id") or ""
        recent = list(values.get("recent_item_ids") or [])
        _, ignored = recommend.shopper_history(recent_item_ids=recent)
        filters = {**values.get("filters", {}), "exclude": values.get("exclude") or ()}
        result = recommend.recommendations(
            customer=customer,
            session_id=session_id,
            recent_item_ids=recent,
            k=values["k"],
            filters=_similarity_filters(filters),
            include_purchased=values["include_purchased"],
        )
        return _recommendations_response(
            request,
            result,
            customer_id=customer_id or None,
            session_id=session_id or None,
            ignored=ignored,
        )


class CustomerCreateView(PluginAPIView):
    write_model = Customer
    private_reads = True

    @extend_schema(
        operation_id="customers_create",
        request=s.CustomerInputSerializer,
        responses={201: s.CustomerOutputSerializer, 400: ERROR, 409: ERROR, **COMMON_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = s.CustomerInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        customer = services.customer_create(**data.validated_data)
        return Response(s.CustomerOutputSerializer(customer).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[_external_id_param()])
class CustomerDetailView(PluginAPIView):
    """Customer data is personal: reading it needs a token with the view permission."""

    write_model = Customer
    private_reads = True

    @extend_schema(
        operation_id="customers_retrieve",
        responses={200: s.CustomerOutputSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = selectors.customer_get(external_id=_clean_path_id(external_id))
        if customer is None:
            raise NotFound(f"No customer with external_id {external_id!r}.")
        return Response(s.CustomerOutputSerializer(customer).data)


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
            [tracking.ClientEvent(e["event"], e["item_id"], e.get("key") or None) for e in events],
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


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 for URLs no route matches: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception or Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Server error; it has been logged."}, status=500)
    return default_server_error(request)
