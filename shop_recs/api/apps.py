from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "shop_recs.api"
    label = "shop_recs_api"
    verbose_name = "Recommendations REST API"
