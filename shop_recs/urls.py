"""Project URLs: the admin, the REST API under /api/v1/, media in development."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from django.views.static import serve

urlpatterns = [
    path("", RedirectView.as_view(url="/api/v1/docs/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("shop_recs.api.urls")),
    # Uploaded product images. A real deployment serves MEDIA_ROOT from its web server or object
    # storage; the demo and small shops can let Django do it (DJANGO_SERVE_MEDIA=1).
    *(
        [re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT})]
        if settings.SERVE_MEDIA
        else []
    ),
]

handler404 = "shop_recs.api.views.not_found"
handler500 = "shop_recs.api.views.server_error"
