from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    # Prefixed so the plugin never clashes with a shop's own "catalog" app.
    label = "shop_recs_catalog"
    verbose_name = "Recommendations catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from catalog import conf  # noqa: F401  (connects the setting_changed reload)
