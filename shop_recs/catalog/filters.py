"""Filter sets for catalog reads (django-filter), used by the selectors."""

import django_filters

from shop_recs.catalog.models import Item


class ItemFilter(django_filters.FilterSet):
    category = django_filters.CharFilter(field_name="category")
    brand = django_filters.CharFilter(field_name="brand")
    in_stock = django_filters.BooleanFilter(field_name="in_stock")
    is_active = django_filters.BooleanFilter(field_name="is_active")
    price_min = django_filters.NumberFilter(field_name="price", lookup_expr="gte")
    price_max = django_filters.NumberFilter(field_name="price", lookup_expr="lte")
    updated_since = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Item
        fields = ["category", "brand", "in_stock", "is_active"]
