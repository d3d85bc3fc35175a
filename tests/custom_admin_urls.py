from django.urls import path

from tests.custom_admin import site

urlpatterns = [path("backoffice/", site.urls)]
