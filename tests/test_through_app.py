"""``bench/quality.py --through-app`` at a tiny size: the bench's splits go through the app
(recs_import, recs_encode, recs_train, revealed events, recs_export) and are scored by the
bench's metric functions; with the same model family and seed the app row must equal the
in-memory row on every protocol (issue 12, item 2).
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

import pytest

from shop_recs.recsys.bundle import EVENT_COLUMNS, ITEM_COLUMNS, bundle_dataset
from shop_recs.recsys.evaluation import evaluate, make_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import through_app

pytestmark = pytest.mark.django_db

FAMILIES = {
    "shirt": ("Shirts", "shirt", ["linen", "cotton", "denim", "silk", "flannel", "polo",
                                   "oxford", "hawaiian"]),
    "boot": ("Boots", "boots", ["leather", "hiking", "chelsea", "rain", "snow", "riding",
                                "work", "desert"]),
    "lamp": ("Lamps", "lamp", ["desk", "floor", "bedside", "clip-on", "paper", "brass",
                               "pendant", "reading"]),
    "mug": ("Kitchen", "coffee mug", ["ceramic", "enamel", "glass", "travel", "stoneware", "tin",
                                      "espresso", "porcelain"]),
}  # fmt: skip
USERS = 80
PER_USER = 7
PER_FAMILY = 8


def write_bundle(root: Path) -> Path:
    """32 items in four families; 80 shoppers, each with 7 rated items, 6 of one family and one
    of another (time ordered), a low rating now and then (not a positive)."""
    root.mkdir()
    with (root / "items.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=ITEM_COLUMNS)
        writer.writeheader()
        for family, (category, noun, kinds) in FAMILIES.items():
            for n, kind in enumerate(kinds):
                writer.writerow(
                    {
                        "item_id": f"{family}-{n}",
                        "title": f"{kind.title()} {noun}",
                        "description": f"A {kind} {noun} from our {category.lower()} range.",
                        "category": category,
                        "brand": "Acme",
                        "price": "",
                        "image": "",
                    }
                )
    names = list(FAMILIES)
    rng = random.Random(0)
    rows = []
    for u in range(USERS):
        family = names[u % len(names)]
        items = [f"{family}-{(u // len(names) + j) % PER_FAMILY}" for j in range(PER_USER - 1)]
        # one item of another family, somewhere in the shopper's history
        stray = rng.choice([f for f in names if f != family])
        items.insert(rng.randrange(PER_USER), f"{stray}-{rng.randrange(PER_FAMILY)}")
        for j, item in enumerate(items):
            rows.append((f"u{u}", item, "rating", "2" if (u + j) % 7 == 0 else "5", u * 10 + j))
    rows.sort(key=lambda r: r[4])
    with (root / "interactions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(EVENT_COLUMNS)
        for user, item, event, value, t in rows:
            hours, minutes = divmod(t, 60)
            writer.writerow([user, item, event, value, f"2020-01-{1 + hours // 24:02d}T"
                             f"{hours % 24:02d}:{minutes:02d}:00Z"])  # fmt: skip
    return root


def test_the_app_path_ranks_what_the_bench_ranks(tmp_path, settings) -> None:
    from shop_recs.recsys.selection import select_model

    settings.SHOP_RECS = {**settings.SHOP_RECS, "MODEL_DIR": str(tmp_path / "models")}
    bundle = write_bundle(tmp_path / "tiny")
    dataset = bundle_dataset(bundle, cache_dir=tmp_path / "cache", progress=False)
    assert dataset.n_items == 32 and dataset.n_users == USERS
    # a budget the whole (bounded) EASE search fits in even on a busy machine, so both runs
    # try the same candidates and choose the same: what differs is then only the app's path
    budget, families, ks = 120.0, ["ease"], [10]
    splits = [make_split(dataset, p, 0) for p in ("warm", "cold-items", "cold-users")]
    in_memory, chosen = {}, {}
    for split in splits:
        selection = select_model(
            split.train, budget_seconds=budget, seed=0, families=families, progress=False
        )
        in_memory[split.protocol] = [evaluate(selection.model, split, ks=ks)]
        chosen[split.protocol] = selection.chosen["params"]
    runs = through_app.run(
        bundle, dataset, splits, ks, budget_seconds=budget, families=families, log=None
    )
    for split in splits:
        (app,) = runs[split.protocol]
        assert app["family"] == "ease"
        mem = in_memory[split.protocol][0]
        assert split.n_test_users > 0
        assert app["params"] == chosen[split.protocol], split.protocol
        # the same model on the same events, served from pgvector: the same figures
        for name in ("recall@10", "ndcg@10"):
            assert app["metrics"][name] == pytest.approx(mem[name], rel=0.03, abs=1e-3), (
                split.protocol,
                name,
                app["metrics"][name],
                mem[name],
                app["params"],
                chosen[split.protocol],
            )
        lines, ok = through_app.comparison_rows(split.protocol, [mem], [app], ks)
        assert ok and "through the app (ease)" in "\n".join(lines)
