from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "shop_recs.catalog"
    # Prefixed so the plugin never clashes with a shop's own "catalog" app.
    label = "shop_recs_catalog"
    verbose_name = "Recommendations catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # imported here, not at the top: an AppConfig module is imported before models load
        from django.core import checks
        from django.db.backends.signals import connection_created

        from shop_recs.catalog.checks import check_database, check_pgvector, check_plugin_apps
        from shop_recs.catalog.db import check_read_database
        from shop_recs.catalog.vectors import set_session_ef_search
        from shop_recs.conf import check_settings_keys

        connection_created.connect(set_session_ef_search, dispatch_uid="shop_recs.ef_search")
        checks.register(check_plugin_apps)
        checks.register(check_settings_keys)
        checks.register(check_database)
        checks.register(check_read_database)
        checks.register(check_pgvector, checks.Tags.database)
