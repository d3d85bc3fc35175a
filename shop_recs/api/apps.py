from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "shop_recs.api"
    label = "shop_recs_api"
    verbose_name = "Recommendations REST API"

    def ready(self) -> None:
        from django.core import checks

        from shop_recs.api.throttles import check_throttle_settings

        checks.register(check_throttle_settings)
