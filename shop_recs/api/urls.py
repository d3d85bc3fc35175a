from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from shop_recs.api import views

ID = r"(?P<external_id>[^/]+)"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
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
