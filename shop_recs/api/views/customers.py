"""Customers: create, and read (personal data: needs the view permission)."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from shop_recs.api import serializers as s
from shop_recs.api.base import PluginAPIView, extend_schema
from shop_recs.api.views.common import (
    COMMON_ERRORS,
    ERROR,
    READ_ERRORS,
    _clean_path_id,
    _external_id_param,
)
from shop_recs.catalog import selectors, services
from shop_recs.catalog.models import Customer


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
