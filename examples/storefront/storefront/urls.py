from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from shop import views

urlpatterns = [
    path("", views.ProductListView.as_view(), name="home"),
    path("products/<str:external_id>/", views.ProductDetailView.as_view(), name="product"),
    path("products/<str:external_id>/buy/", views.buy, name="buy"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # shop_recs: the REST API (widgets, tracking endpoint, recommendations)
    path("api/v1/", include("shop_recs.api.urls")),
    *static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT),
]
