from django.apps import AppConfig


class ShopAppConfig(AppConfig):
    """A stand-in for a shop's own catalogue app (tests of the item source adapter)."""

    name = "tests.shopapp"
    label = "shopapp"
    default_auto_field = "django.db.models.BigAutoField"
