from django.apps import AppConfig


class StorefrontConfig(AppConfig):
    """The shop-facing side: mirroring the shop's products (ITEM_SOURCE), tracking, widgets,
    template tags and their static files."""

    name = "shop_recs.storefront"
    # Prefixed so the plugin never clashes with a shop's own "storefront" app.
    label = "shop_recs_storefront"
    verbose_name = "Recommendations storefront"

    def ready(self) -> None:
        # imported here, not at the top: an AppConfig module is imported before models load
        from django.core import checks

        # importing tracking connects its purchase_completed receiver
        from shop_recs.storefront import source, tracking  # noqa: F401

        # The shop's own product model (ITEM_SOURCE): its saves and deletes are mirrored into
        # the items; the settings are checked by ``manage.py check``.
        checks.register(source.check_settings)
        source.connect_signals()
