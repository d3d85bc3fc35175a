"""Item source adapter: mirror a shop's own product model into the plugin's items.

``SHOP_RECS["ITEM_SOURCE"]`` names the shop's product model and says how each plugin field is
read from a product (a dotted attribute path, a callable, or ``"callable:dotted.path"``)::

    "ITEM_SOURCE": {
        "MODEL": "shop.Product",
        "FIELDS": {"external_id": "sku", "title": "name", "category": "categories.name|join",
                   "in_stock": "stockrecords.num_in_stock|sum", "images": "images.file"},
        "QUERYSET": None,   # or the dotted path of a callable returning the products to mirror
        "WATCH": {},        # models read by callables: {"app.Model": "lookup from the product"}
        "PARENT": None,     # variants: the foreign key to the parent product, e.g. "parent"
    }

Saves and deletes of products, and of every row their fields are read through (stock records,
images, categories, many-to-many links), are noted after the shop's commit and mirrored outside
its request (``connect_signals``, wired in the storefront's ``AppConfig.ready()``) through the
catalog services, so validation, the ``item_content_changed`` signal and encoding happen exactly
as for the REST API; ``sync_all`` (``python manage.py recs_sync``) backfills and reconciles.

Items that came from the source carry a marker in ``Item.source``: ``{"model":
"shop.Product", "images": [...]}``. ``sync_all`` deactivates only items with the marker of the
configured model (never items created through the API or an import); and ``images`` lists the
product's image references as last mirrored, so an unchanged product is recognised without
reading its files. The marker is not part of the API's item, so a client never drops it.

Modules: :mod:`.values` (reading a product, reducers), :mod:`.paths` (the models a path reads
through), :mod:`.checks` (the settings and ``manage.py check``), :mod:`.watch` (the model
signals: the product and every related row), :mod:`.queue` (mirroring outside the shop's
request), :mod:`.mirror` (one product), :mod:`.sync` (``recs_sync``).
"""

from shop_recs.catalog.services import customer_external_id, customer_for_user
from shop_recs.storefront.source.checks import check_settings, item_source
from shop_recs.storefront.source.mirror import mirror_products, product_removed, product_sync
from shop_recs.storefront.source.queue import mirror_queue
from shop_recs.storefront.source.sync import SyncReport, sync_all
from shop_recs.storefront.source.values import REDUCERS, ImageRef, ItemSource, resolve_path
from shop_recs.storefront.source.watch import connect_signals, paused, watched_models

__all__ = [
    "REDUCERS",
    "ImageRef",
    "ItemSource",
    "SyncReport",
    "check_settings",
    "connect_signals",
    "customer_external_id",
    "customer_for_user",
    "item_source",
    "mirror_products",
    "mirror_queue",
    "paused",
    "product_removed",
    "product_sync",
    "resolve_path",
    "sync_all",
    "watched_models",
]
