"""The tiny storefront of the widget tests (tests.storefront_urls) with the admin beside it:
the experiments browser test creates an experiment in the admin and drives the storefront."""

from django.contrib import admin
from django.urls import path

from tests.storefront_urls import urlpatterns as storefront

urlpatterns = [path("admin/", admin.site.urls), *storefront]
