"""The test settings with the plugin's admin pages on a shop's own AdminSite."""

from tests.settings import *  # noqa: F403
from tests.settings import SHOP_RECS

ROOT_URLCONF = "tests.custom_admin_urls"
SHOP_RECS = {**SHOP_RECS, "ADMIN_SITE": "tests.custom_admin.site"}
