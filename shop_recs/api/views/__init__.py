"""REST views: one operation per method, no ORM queries or business logic here, one module per
resource. Reads go through ``shop_recs.catalog.selectors`` and the search/ranking selectors,
writes through ``shop_recs.catalog.services``.
"""

from shop_recs.api.views.customers import CustomerCreateView, CustomerDetailView
from shop_recs.api.views.errors import not_found, server_error
from shop_recs.api.views.events import EventIngestView, TrackView
from shop_recs.api.views.items import (
    ItemDetailView,
    ItemImageDetailView,
    ItemImageListCreateView,
    ItemListCreateView,
)
from shop_recs.api.views.lists import ItemSimilarView, SearchView
from shop_recs.api.views.recommendations import CustomerRecommendationsView, RecommendationsView

__all__ = [
    "CustomerCreateView",
    "CustomerDetailView",
    "CustomerRecommendationsView",
    "EventIngestView",
    "ItemDetailView",
    "ItemImageDetailView",
    "ItemImageListCreateView",
    "ItemListCreateView",
    "ItemSimilarView",
    "RecommendationsView",
    "SearchView",
    "TrackView",
    "not_found",
    "server_error",
]
