"""Signals the catalog sends so that other layers (workers) can react without being imported.

Each is sent after the transaction that made the change has committed.
"""

from django.dispatch import Signal

# kwargs: item_ids (list[int]) — interactions were recorded for these items.
interactions_recorded = Signal()
# kwargs: item_ids (list[int]) — items were created or their content (text/images) changed.
item_content_changed = Signal()
# kwargs: image_ids (list[int]) — images were added by URL and wait to be fetched.
item_images_added = Signal()
# kwargs: force (bool), note (str) — someone asked for a model to be trained (admin, API).
training_requested = Signal()
