"""bench/scale.py at a small size: every stage runs, the generator is deterministic and its
popularity skewed, and the live stages keep serving (no errors, full lists, high recall)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from shop_recs.catalog import vectors
from shop_recs.catalog.models import Interaction, Item, ItemEmbedding, ModelVersion

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scale"] = module
    spec.loader.exec_module(module)
    return module


def test_the_generator_is_deterministic_and_skewed(scale) -> None:
    a = scale.make_shop(3000, dim=16, seed=4)
    b = scale.make_shop(3000, dim=16, seed=4)
    c = scale.make_shop(3000, dim=16, seed=5)
    assert np.array_equal(a.category, b.category) and np.array_equal(a.brand, b.brand)
    assert not np.array_equal(a.category, c.category)
    np.testing.assert_array_equal(scale.item_vectors(a, 0, 100), scale.item_vectors(b, 0, 100))
    assert scale.item_texts(a, 10, 12) == scale.item_texts(b, 10, 12)
    ea, eb = scale.make_events(a, 30_000, seed=1), scale.make_events(b, 30_000, seed=1)
    assert all(np.array_equal(ea[k], eb[k]) for k in ea)
    counts = np.sort(np.bincount(ea["item"], minlength=3000))[::-1]
    assert counts[:30].sum() > 0.08 * len(ea["item"])  # the top 1 % of items: power law
    # shoppers keep to a favourite category
    cats = a.category[ea["item"]]
    top_share = np.mean(
        [np.bincount(cats[ea["user"] == u]).max() / (ea["user"] == u).sum() for u in range(50)]
    )
    assert top_share > 0.6
    # vectors carry the structure: same-category items are nearer than others
    v = scale.item_vectors(a, 0, 3000)
    same = a.category[:, None] == a.category[None, :]
    sims = v @ v.T
    assert sims[same].mean() > sims[~same].mean() + 0.2


@pytest.mark.django_db(transaction=True)
def test_a_small_scale_run(scale, settings, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SHOP_RECS_DATA_DIR", str(tmp_path))
    args = scale.parse_args(
        ["--items", "2000", "--events", "20000", "--dim", "32", "--clients", "2",
         "--seconds", "3", "--train-budget", "20", "--max-epochs", "3"]
    )  # fmt: skip
    result = scale.main_scale(args)
    stages = {s["name"]: s for s in result["stages"]}
    assert list(stages) == [
        "generate", "import_items", "import_events", "vector_load", "index_build", "training",
        "activation", "serving_idle", "live_reencode", "live_activation",
    ]  # fmt: skip
    assert Item.objects.count() == 2000 and Interaction.objects.count() == 20000
    assert stages["vector_load"]["units"] == 4000
    assert stages["activation"]["units"] == 2000
    assert all(
        s["seconds"] > 0 and s["db_mb"] > 0 and s["peak_rss_mb"] > 0 for s in stages.values()
    )
    for name in ("serving_idle", "live_reencode", "live_activation"):
        extra = stages[name]["extra"]
        assert extra["error_count"] == 0, extra["errors"]
        assert extra["short_lists"] == 0
        assert extra["all"]["requests"] > 10
        assert extra["all"]["p99_ms"] >= extra["all"]["p50_ms"] > 0
        assert extra["recall probes search"] > 0
        assert extra["recall@10 search"] >= 0.9 and extra["recall@10 similar"] >= 0.9
    assert stages["live_reencode"]["extra"]["operation_result"] == 200  # 10 % re-encoded
    active = ModelVersion.objects.get(is_active=True)
    assert active.note.endswith("live activation")
    space = vectors.space_key("hybrid", active.pk)
    assert ItemEmbedding.objects.filter(space=space).count() == 2000
    assert vectors.index_valid(vectors.index_name(space, active.dim))
    assert all(vectors.index_valid(vectors.index_name(s, 32)) for s in ("text", "content"))
