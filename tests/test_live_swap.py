"""Live operations never degrade serving: model activation builds the new version's vectors
and index beside the live ones (``CREATE INDEX CONCURRENTLY``) and switches a pointer, and a
bulk re-encode keeps the live indexes, while a reader thread queries without pause."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from shop_recs.catalog import vectors
from shop_recs.catalog.models import Customer, Item, ItemEmbedding, ModelVersion, Space
from shop_recs.catalog.vectors import (
    ensure_index,
    index_name,
    index_valid,
    space_indexes,
    space_key,
)
from shop_recs.encoding.service import items_encode
from shop_recs.ranking.activation import model_activate, model_rollback
from shop_recs.ranking.recommend import recommendations
from shop_recs.ranking.similar import item_similar
from shop_recs.ranking.training import model_train
from shop_recs.search.knn import item_spaces
from tests.admin_support import TEXT_DIM, make_shop, tiny_settings

pytestmark = pytest.mark.django_db(transaction=True)
K = 5


@pytest.fixture
def shop(settings, tmp_path):
    settings.SHOP_RECS = tiny_settings(
        MODEL_DIR=str(tmp_path / "models"),
        TEXT_ENCODER="tests.hash_encoder.HashingTextEncoder",
        TEXT_ENCODER_OPTIONS={"dim": TEXT_DIM},
    )
    return make_shop(users=60, per_family=200)  # 600 items


class Reader(threading.Thread):
    """Queries similar items and recommendations in a loop on its own connection; records
    every error and every short or non-model list."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.calls = 0
        self.problems: list[str] = []
        self.versions: set[int] = set()

    def run(self) -> None:
        customers = list(Customer.objects.order_by("pk")[:6])
        try:
            while not self.stop.is_set():
                for n, customer in enumerate(customers):
                    try:
                        found = item_similar(external_id=f"shirt-{n}", space="hybrid", k=K)
                        if found is None or len(found) != K:
                            self.problems.append(f"similar gave {found and len(found)}")
                        result = recommendations(customer=customer, k=K)
                        if len(result.results) != K:
                            self.problems.append(f"recommendations gave {len(result.results)}")
                        if {r.source for r in result.results} != {"model"}:
                            self.problems.append(f"sources {[r.source for r in result.results]}")
                        self.versions.add(result.model_version)
                    except Exception as exc:  # the point of the test: there must be none
                        self.problems.append(f"{type(exc).__name__}: {exc}")
                    self.calls += 1
        finally:
            connections.close_all()


def _hybrid_index_state(version: ModelVersion) -> bool | None:
    return index_valid(index_name(space_key(Space.HYBRID, version.pk), version.dim))


def test_activations_and_a_bulk_re_encode_never_interrupt_serving(shop) -> None:
    versions = [model_train(force=True, activate=False) for _ in range(3)]
    assert all(v.status == "ready" and not v.is_active for v in versions)
    first, second, third = versions
    model_activate(version=first)
    reader = Reader()
    reader.start()
    try:
        for version in (second, third):
            time.sleep(0.3)
            calls = reader.calls
            with CaptureQueriesContext(connection) as captured:
                written = model_activate(version=version)
            assert written == len(shop)
            sql = [q["sql"] for q in captured.captured_queries]
            assert any("CREATE INDEX CONCURRENTLY" in s for s in sql)
            # the pointer moved in one short transaction, after the index was built
            assert not any("DROP INDEX IF EXISTS recs_emb_text" in s for s in sql)
            version.refresh_from_db()
            assert version.is_active
            assert _hybrid_index_state(version) is True
            time.sleep(0.3)
            assert reader.calls > calls  # the reader kept going
        # the previous version's space is kept (for rollback), the older one dropped
        assert ItemEmbedding.objects.filter(space=space_key("hybrid", second.pk)).count() == 600
        assert _hybrid_index_state(second) is True
        assert not ItemEmbedding.objects.filter(space=space_key("hybrid", first.pk)).exists()
        assert _hybrid_index_state(first) is None
        assert ModelVersion.objects.filter(is_active=True).get() == third

        # a bulk re-encode of every item (>= ENCODE_BULK_MIN): the live indexes stay
        seen: list[set[str]] = []
        wanted = {
            index_name("text", TEXT_DIM),
            index_name("content", TEXT_DIM),
            index_name(space_key("hybrid", third.pk), third.dim),
        }
        # the live shop's content indexes (an earlier test of the session may have dropped them
        # behind this process's memo of the indexes it created)
        vectors._ensured.clear()
        for space in ("text", "content"):
            ensure_index(space, TEXT_DIM)
        assert wanted <= set(space_indexes())
        ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
        assert len(ids) >= 500
        report = items_encode(
            item_ids=ids,
            force=True,
            batch_size=100,
            progress=lambda n: seen.append(set(space_indexes())),
        )
        assert report.encoded == len(ids)
        assert len(seen) == 6 and all(wanted <= names for names in seen)
        assert all(index_valid(name) for name in wanted)
        encoders = set(ItemEmbedding.objects.filter(space="text").values_list("encoder", flat=True))
        assert encoders == {f"hashing-{TEXT_DIM}"}

        # rollback is a pointer switch to the kept space
        with CaptureQueriesContext(connection) as captured:
            assert model_rollback() == second
        assert ItemEmbedding.objects.filter(space=space_key("hybrid", third.pk)).count() == 600
        # readers see one model space, by its public name: the active version's
        assert set(item_spaces(external_id="shirt-0")[1]) == {"text", "content", "hybrid"}
        found = item_similar(external_id="shirt-0", space="text", k=3)
        assert all(set(n.similarity) == {"text", "content", "hybrid"} for n in found)
        time.sleep(0.3)
    finally:
        reader.stop.set()
        reader.join(timeout=30)
    assert not reader.problems, reader.problems[:5]
    assert reader.calls > 10
    assert {second.pk, third.pk} <= reader.versions


def test_a_first_bulk_load_builds_its_index_after_the_load(settings, tmp_path) -> None:
    settings.SHOP_RECS = tiny_settings(
        TEXT_ENCODER="tests.hash_encoder.HashingTextEncoder",
        TEXT_ENCODER_OPTIONS={"dim": 24},
        ENCODE_BULK_MIN=4,
    )
    ids = [
        Item.objects.create(external_id=f"i{n}", title=f"item {n} red shoe").pk for n in range(8)
    ]
    seen: list[set[str]] = []
    with CaptureQueriesContext(connection) as captured:
        items_encode(
            item_ids=ids, batch_size=4, progress=lambda n: seen.append(set(space_indexes()))
        )
    name = index_name("text", 24)
    # an empty space serves nobody: its index is built once, concurrently, after the load
    assert all(name not in names for names in seen)
    assert index_valid(name) is True
    assert any(
        "CREATE INDEX CONCURRENTLY" in q["sql"] and name in q["sql"]
        for q in captured.captured_queries
    )


def test_concurrent_activations_run_one_after_the_other(shop) -> None:
    """Two activations at once (an admin click while a scheduled training activates) are
    serialised by the activation lock: whichever ends up active keeps its vectors and index,
    and each activation's pointer switch happened after the other had finished."""
    versions = [model_train(force=True, activate=False) for _ in range(3)]
    first, second, third = versions
    model_activate(version=first)
    spans: dict[int, tuple[float, float]] = {}
    errors: list[BaseException] = []

    def activate(version: ModelVersion) -> None:
        try:
            began = time.monotonic()
            model_activate(version=version)
            spans[version.pk] = (began, time.monotonic())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=activate, args=(v,)) for v in (second, third)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    active = ModelVersion.objects.get(is_active=True)
    assert active in (second, third)
    other = third if active == second else second
    # the active version's space is whole and indexed; the other is kept for rollback
    assert ItemEmbedding.objects.filter(space=space_key("hybrid", active.pk)).count() == 600
    assert _hybrid_index_state(active) is True
    assert ItemEmbedding.objects.filter(space=space_key("hybrid", other.pk)).count() == 600
    assert not ItemEmbedding.objects.filter(space=space_key("hybrid", first.pk)).exists()
    # the one that activated last ended last: it waited for the other's lock
    assert spans[active.pk][1] >= spans[other.pk][1]
    assert model_rollback() == other
