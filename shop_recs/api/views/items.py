"""Items and their images: list, create, read, update, delete; upload or register images."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from shop_recs.api import serializers as s
from shop_recs.api.base import PluginAPIView, extend_schema
from shop_recs.api.parsers import LimitedJSONParser
from shop_recs.api.views.common import (
    COMMON_ERRORS,
    ERROR,
    READ_ERRORS,
    _external_id_param,
    _get_item,
)
from shop_recs.catalog import selectors, services
from shop_recs.catalog.models import Item, ItemImage
from shop_recs.conf import recs_settings
from shop_recs.encoding.images import item_image_add_url


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
        # A plain dict of the query (last value of each name): a filter that does not parse is
        # a 400 naming it, never silently dropped.
        query = s.ItemListQuerySerializer(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        return selectors.item_list(filters=dict(query.validated_data))

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

    @extend_schema(
        operation_id="items_destroy",
        description="Deactivates the item (``is_active`` false): it leaves every list at once, "
        "and its interactions, images and vectors are kept (history trains the model). "
        "PATCH ``is_active`` back to true to restore it.",
        responses={204: None, 404: ERROR, **COMMON_ERRORS},
    )
    def delete(self, request: Request, external_id: str) -> Response:
        services.item_deactivate(item=_get_item(external_id))
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
            image = item_image_add_url(
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
