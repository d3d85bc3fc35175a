from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "shop_recs.catalog"
    # Prefixed so the plugin never clashes with a shop's own "catalog" app.
    label = "shop_recs_catalog"
    verbose_name = "Recommendations catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        # conf connects the setting_changed reload; merchandising clears its rule cache when a
        # rule is saved or deleted.
        from shop_recs.catalog import conf, merchandising  # noqa: F401
        from shop_recs.catalog.vectors import set_session_ef_search

        connection_created.connect(set_session_ef_search, dispatch_uid="shop_recs.ef_search")

        # The shop's own product model (ITEM_SOURCE): its saves and deletes are mirrored into
        # the items; the settings are checked by ``manage.py check``.
        from django.core import checks

        from shop_recs.catalog import source

        checks.register(source.check_settings)
        source.connect_signals()
