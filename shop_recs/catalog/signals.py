"""Signals the catalog and the services above it send, so that other layers can react without
being imported (the workers layer subscribes in its ``AppConfig.ready()``).

Each is sent after the transaction that made the change has committed.
"""

from django.dispatch import Signal

# kwargs: item_ids (list[int]) — interactions were recorded for these items.
interactions_recorded = Signal()
# kwargs: item_ids (list[int]) — interactions of these items were deleted (a customer's
# personal data erased).
interactions_deleted = Signal()
# kwargs: item_ids (list[int]) — items were created or their content (text/images) changed.
item_content_changed = Signal()
# kwargs: image_ids (list[int]) — images were added by URL and wait to be fetched.
item_images_added = Signal()
# kwargs: item_ids (list[int]) — these items' content vectors were just stored (encoding); the
# active model's item vectors of them follow (shop_recs.workers.receivers). Sent synchronously,
# with send_robust: a failing receiver never undoes the stored vectors.
items_encoded = Signal()
# kwargs: force (bool), note (str) — someone asked for a model to be trained (admin, API).
training_requested = Signal()
# kwargs: job_id (int), kind (str) — a background job was created and waits to be run (sent
# after commit). A receiver returns a truthy value when it has taken the job.
job_requested = Signal()
