from django.apps import AppConfig


class TableShopConfig(AppConfig):
    """A shop whose product data spans tables, as in widely used shop frameworks: price and
    stock in stock records, a gallery table, categories through an explicit many-to-many model,
    a brand table, and variants as child products (tests of related-row mirroring)."""

    name = "tests.tableshop"
    label = "tableshop"
    default_auto_field = "django.db.models.BigAutoField"
