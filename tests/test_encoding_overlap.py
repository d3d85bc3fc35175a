"""Encoding outside a transaction stores each batch in a thread while the next is encoded:
the same vectors as in line, batches stored in order, a failure raised, not lost."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from shop_recs.catalog.models import Item, ItemEmbedding, ItemEncoding
from shop_recs.encoding import service
from shop_recs.encoding.encoders import item_text_of, text_encoder

pytestmark = pytest.mark.django_db(transaction=True)

TITLES = ["Linen shirt", "Hiking boots", "Canvas tote bag", "Rain boots", "Silk blouse"]


@pytest.fixture
def items(settings):
    settings.SHOP_RECS = {**settings.SHOP_RECS, "IMAGE_ENCODER": None, "ENCODE_BULK_MIN": 0}
    return [Item.objects.create(external_id=f"o{n}", title=t) for n, t in enumerate(TITLES)]


def test_overlapped_batches_store_what_in_line_encoding_would(items, monkeypatch) -> None:
    stored_by: list[tuple[str, list[int]]] = []
    real_store = service._store

    def store(plan, vectors, decoded):
        stored_by.append((threading.current_thread().name, sorted(vectors)))
        real_store(plan, vectors, decoded)

    monkeypatch.setattr(service, "_store", store)
    ids = [i.pk for i in items]
    report = service.items_encode(item_ids=ids, batch_size=2)
    assert report.encoded == 5 and report.failed == 0
    assert [batch for _, batch in stored_by] == [ids[0:2], ids[2:4], ids[4:5]]  # in order
    assert all(name.startswith("shop_recs-store") for name, _ in stored_by)
    assert ItemEncoding.objects.filter(status="done").count() == 5
    expected = text_encoder().encode_texts([item_text_of(i) for i in items])
    got = {
        pk: np.asarray(vec, np.float32)
        for pk, vec in ItemEmbedding.objects.filter(space="text").values_list("item_id", "vector")
    }
    np.testing.assert_allclose(np.stack([got[pk] for pk in ids]), expected, atol=1e-6)
    # a single batch is stored in line
    stored_by.clear()
    service.items_encode(item_ids=ids[:2], force=True, batch_size=2)
    assert stored_by == [(threading.current_thread().name, ids[:2])]


def test_a_failure_of_the_storing_thread_is_raised(items, monkeypatch) -> None:
    calls = []
    real_store = service._store

    def store(plan, vectors, decoded):
        calls.append(sorted(vectors))
        if len(calls) == 2:
            raise RuntimeError("database went away")
        real_store(plan, vectors, decoded)

    monkeypatch.setattr(service, "_store", store)
    with pytest.raises(RuntimeError, match="database went away"):
        service.items_encode(item_ids=[i.pk for i in items], batch_size=2)
    # the first batch was stored; the failed one and those after it are still to do
    assert ItemEncoding.objects.filter(status="done").count() == 2
