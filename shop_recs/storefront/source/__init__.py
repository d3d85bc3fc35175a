"""Item source adapter: mirror a shop's own product model into the plugin's items.

``SHOP_RECS["ITEM_SOURCE"]`` names the shop's product model and says how each plugin field is
read from a product (a dotted attribute path, a callable, or ``"callable:dotted.path"``)::

    "ITEM_SOURCE": {
        "MODEL": "shop.Product",
        "FIELDS": {"external_id": "sku", "title": "name", "category": "category.name",
                   "images": "images.file"},
        "QUERYSET": None,   # or the dotted path of a callable returning the products to mirror
    }

Saves and deletes of products are mirrored after commit (``connect_signals``, wired in the
storefront's ``AppConfig.ready()``) through the catalog services, so validation, the
``item_content_changed`` signal and encoding happen exactly as for the REST API;
``sync_all`` (``python manage.py recs_sync``) backfills and reconciles.

Items that came from the source carry a marker in ``Item.source``: ``{"model":
"shop.Product", "images": [...]}``. ``sync_all`` deactivates only items with the marker of the
configured model (never items created through the API or an import); and ``images`` lists the
product's image references as last mirrored, so an unchanged product is recognised without
reading its files. The marker is not part of the API's item, so a client never drops it.

Modules: :mod:`.values` (reading a product), :mod:`.checks` (the settings and ``manage.py
check``), :mod:`.mirror` (one product, and the model signals), :mod:`.sync` (``recs_sync``).
"""

from shop_recs.catalog.services import customer_external_id, customer_for_user
from shop_recs.storefront.source.checks import check_settings, item_source
from shop_recs.storefront.source.mirror import connect_signals, product_removed, product_sync
from shop_recs.storefront.source.sync import SyncReport, sync_all
from shop_recs.storefront.source.values import ImageRef, ItemSource, resolve_path

__all__ = [
    "ImageRef",
    "ItemSource",
    "SyncReport",
    "check_settings",
    "connect_signals",
    "customer_external_id",
    "customer_for_user",
    "item_source",
    "product_removed",
    "product_sync",
    "resolve_path",
    "sync_all",
]
