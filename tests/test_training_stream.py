"""Training data streamed from PostgreSQL in chunks equals the in-memory load, and so does
the model trained on it; the wall-clock budget stops training early with a usable model."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from shop_recs.catalog.models import Customer, Interaction, Item
from shop_recs.conf import recs_settings
from shop_recs.ranking.dataset import catalog_features, training_dataset, user_key
from shop_recs.recsys.base import Dataset
from shop_recs.recsys.hybrid import HybridRecommender
from tests.admin_support import TINY_MODEL, make_shop, tiny_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(settings, tmp_path):
    settings.SHOP_RECS = tiny_settings(MODEL_DIR=str(tmp_path / "models"))
    items = make_shop(users=60, per_family=5)
    # beside the customers' events: anonymous sessions, low ratings (not positives), an
    # item that is not encoded (left out), and events at the same instant (ties keep id order)
    plain = Item.objects.create(external_id="not-encoded", title="Plain")
    at = timezone.now() - timedelta(days=2)
    rows = []
    for n in range(40):
        rows.append(
            Interaction(session_id=f"s{n % 7}", item=items[n % len(items)], event="view",
                        occurred_at=at + timedelta(seconds=n // 3))
        )  # fmt: skip
        rows.append(
            Interaction(customer=Customer.objects.get(external_id=f"c{n % 5}"),
                        item=items[(3 * n) % len(items)], event="rating", value=float(n % 6),
                        occurred_at=at + timedelta(seconds=n))
        )  # fmt: skip
    rows.append(Interaction(session_id="s1", item=plain, event="cart", occurred_at=at))
    Interaction.objects.bulk_create(rows)
    return items


def in_memory_dataset() -> Dataset:
    """The reference: every interaction as a Python tuple, then ``Dataset.from_events``."""
    catalog = catalog_features()
    by_pk = dict(zip(catalog.item_ids, catalog.external_ids, strict=True))
    events = []
    for customer, session, item_id, event, value, when in Interaction.objects.order_by(
        "occurred_at", "id"
    ).values_list(
        "customer__external_id", "session_id", "item_id", "event", "value", "occurred_at"
    ):
        user = user_key(customer_external_id=customer, session_id=session)
        if user is not None and item_id in by_pk:
            events.append((user, by_pk[item_id], event, float(value), when.timestamp()))
    return Dataset.from_events(
        events,
        item_ids=catalog.external_ids,
        item_features=catalog.features,
        weights=recs_settings.EVENT_WEIGHTS,
    )


def test_streaming_load_equals_the_in_memory_load(shop) -> None:
    reference = in_memory_dataset()
    for chunk_rows in (7, 50_000):  # many chunks, one chunk
        streamed, catalog = training_dataset(chunk_rows=chunk_rows)
        assert streamed.user_map.to_list() == reference.user_map.to_list()
        assert streamed.item_map.to_list() == reference.item_map.to_list()
        np.testing.assert_array_equal(streamed.users, reference.users)
        np.testing.assert_array_equal(streamed.items, reference.items)
        np.testing.assert_array_equal(streamed.weights, reference.weights)
        np.testing.assert_allclose(streamed.times, reference.times, rtol=0, atol=1e-5)
    # low ratings and the unencoded item are not in it; sessions are
    assert len(reference) == 60 * 3 + 40 + sum(1 for n in range(40) if n % 6 >= 4)
    assert "session:s3" in streamed.user_map
    assert "not-encoded" not in catalog.external_ids


def test_the_model_trained_on_the_stream_equals_the_in_memory_one(shop) -> None:
    streamed, _ = training_dataset(chunk_rows=11)
    reference = in_memory_dataset()
    params = {**TINY_MODEL, "seed": 3, "num_threads": 1, "device": "cpu"}
    a = HybridRecommender(**params).fit(streamed, progress=False)
    b = HybridRecommender(**params).fit(reference, progress=False)
    np.testing.assert_allclose(a.all_item_vectors(), b.all_item_vectors(), atol=1e-5)
    ids_a, scores_a = a.recommend("c4", k=5)
    ids_b, scores_b = b.recommend("c4", k=5)
    assert list(ids_a) == list(ids_b)
    np.testing.assert_allclose(scores_a, scores_b, atol=1e-5)


def test_a_time_budget_stops_training_with_a_usable_model(shop) -> None:
    dataset, _ = training_dataset()
    params = {**TINY_MODEL, "max_epochs": 200, "patience": 200, "batch_size": 8, "seed": 0}
    model = HybridRecommender(**params).fit(dataset, progress=False, time_budget=0.3)
    history = model.training_history_
    assert history and history[-1].get("stopped") == "deadline"
    assert len(history) < 200
    assert model.fit_seconds_ < 10
    ids, _ = model.recommend("c0", k=3)
    assert len(ids) == 3


def test_training_runs_within_its_budget_and_evaluates_a_user_sample(shop, settings) -> None:
    from shop_recs.ranking.training import model_train

    settings.SHOP_RECS = {
        **settings.SHOP_RECS,
        "MODEL_PARAMS": {**TINY_MODEL, "max_epochs": 500, "patience": 500, "batch_size": 8},
        "MODEL_SELECTION": False,  # the configured model's own budget and evaluation
        "TRAIN_BUDGET_SECONDS": 1.0,
        "TRAIN_EVAL_USERS_MAX": 7,
    }
    version = model_train(force=True)
    assert version.status == "ready" and version.is_active
    assert version.metrics["test_users"] == 7
    stopped = [h for h in version.history if h.get("stopped") == "deadline"]
    assert stopped and len(version.history) < 500
