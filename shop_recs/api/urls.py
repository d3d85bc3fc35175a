"""The plugin's URLs: ``path("api/v1/", include("shop_recs.api.urls"))`` in a project's urls.

Every name lives in the ``shop_recs`` namespace (``reverse("shop_recs:search")``), so a shop's
own ``search`` or ``track`` URL names are never shadowed, and the OpenAPI schema documents the
plugin's endpoints only, under the prefix the shop mounted them at.
"""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularSwaggerView

from shop_recs.api import views
from shop_recs.api.schema import PluginSchemaView

app_name = "shop_recs"

ID = r"(?P<external_id>[^/]+)"

#: The endpoints the schema documents (the schema and docs pages themselves are not in it).
endpoints = [
    path("items/", views.ItemListCreateView.as_view(), name="item-list"),
    re_path(rf"^items/{ID}/$", views.ItemDetailView.as_view(), name="item-detail"),
    re_path(rf"^items/{ID}/images/$", views.ItemImageListCreateView.as_view(), name="item-images"),
    re_path(
        rf"^items/{ID}/images/(?P<image_id>[^/]+)/$",
        views.ItemImageDetailView.as_view(),
        name="item-image-detail",
    ),
    re_path(rf"^items/{ID}/similar/$", views.ItemSimilarView.as_view(), name="item-similar"),
    path("search/", views.SearchView.as_view(), name="search"),
    path("customers/", views.CustomerCreateView.as_view(), name="customer-create"),
    re_path(rf"^customers/{ID}/$", views.CustomerDetailView.as_view(), name="customer-detail"),
    re_path(
        rf"^customers/{ID}/recommendations/$",
        views.CustomerRecommendationsView.as_view(),
        name="customer-recommendations",
    ),
    path("recommendations/", views.RecommendationsView.as_view(), name="recommendations"),
    path("events/", views.EventIngestView.as_view(), name="events"),
    path("track/", views.TrackView.as_view(), name="track"),
]

urlpatterns = [
    path("schema/", PluginSchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="shop_recs:schema"), name="swagger-ui"),
    *endpoints,
]
