"""Signals the storefront sends, so the workers layer can take work without being imported."""

from django.dispatch import Signal

# kwargs: pks (list of product primary keys), removed (list of external ids) — products of the
# item source changed and wait to be mirrored. A receiver returns a truthy value when it has
# taken the batch (the workers layer queues a task when a broker is configured); otherwise the
# process that collected the batch mirrors it in a background thread.
mirror_requested = Signal()
