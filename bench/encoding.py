"""Encoding throughput: the bare encoders vs the full pipeline (``recs_encode --all``).

    python bench/encoding.py [BUNDLE ...]     (default: the demo bundle)
    python bench/encoding.py demo/bundle ../shared/data/ml100k

For each catalog bundle: the bare encoders encode every item's text (the item-text recipe) and
its image file (decode + encode) in batches of ENCODE_BATCH_SIZE, timed with the same loaded
models the pipeline uses; then the bundle is imported into a throwaway database and
``items_encode(force=True)`` (what ``recs_encode --all`` runs) encodes and stores everything.
Last line: pipeline/bare throughput ratio per bundle (target >= 0.9).
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

from _common import ROOT, setup_django
from PIL import Image
from tqdm import tqdm


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("bundles", nargs="*", type=Path, default=[ROOT / "demo/bundle"])
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    return p.parse_args()


def bare(bundle: Path, batch: int) -> tuple[int, float]:
    from shop_recs.encoding.encoders import image_encoder, text_encoder
    from shop_recs.recsys.encoders import item_text

    text_enc, image_enc = text_encoder(), image_encoder()
    with (bundle / "items.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    texts = [
        item_text(
            title=r["title"],
            category=r.get("category", ""),
            brand=r.get("brand", ""),
            description=r.get("description", ""),
        )
        for r in rows
    ]
    paths = [bundle / r["image"] for r in rows if r.get("image")]
    started = time.perf_counter()
    for start in tqdm(range(0, len(rows), batch), desc="bare", unit="batch", leave=False):
        text_enc.encode_texts(texts[start : start + batch])
        chunk = paths[start : start + batch]
        if chunk and image_enc is not None:
            images = []
            for path in chunk:
                with Image.open(path) as img:
                    images.append(img.convert("RGB"))
            image_enc.encode_images(images)
    return len(rows), time.perf_counter() - started


def pipeline(bundle: Path) -> tuple[int, float, str]:
    from django.db import connection

    from shop_recs.catalog.importer import import_bundle
    from shop_recs.catalog.models import Item, ItemEmbedding
    from shop_recs.encoding.service import items_encode

    Item.objects.all().delete()
    with connection.cursor() as cursor:  # start every bundle on clean indexes
        cursor.execute(f"VACUUM {ItemEmbedding._meta.db_table}")
    import_bundle(bundle, with_interactions=False)
    ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
    with tqdm(total=len(ids), desc="pipeline", unit="item", leave=False) as bar:
        report = items_encode(item_ids=ids, force=True, progress=bar.update)
    return len(ids), report.seconds, report.summary()


def main() -> None:
    args = parse_args()
    setup_django(args.database_url)
    from shop_recs.conf import recs_settings
    from shop_recs.encoding.encoders import warm_up

    warm_up()
    batch = int(recs_settings.ENCODE_BATCH_SIZE)
    ratios = []
    for bundle in args.bundles:
        if not (bundle / "items.csv").is_file():
            raise SystemExit(f"{bundle} is not a catalog bundle (no items.csv)")
        bare(bundle, batch)  # warm-up pass: first batches pay for lazy initialisation
        n_bare, t_bare = bare(bundle, batch)
        n_pipe, t_pipe, summary = pipeline(bundle)
        bare_rate, pipe_rate = n_bare / t_bare, n_pipe / t_pipe
        ratios.append(f"{bundle.name}: {pipe_rate / bare_rate:.2f}")
        print(
            f"{bundle}: bare encoders {bare_rate:.1f} items/s ({n_bare} items in {t_bare:.1f}s)"
            f" | pipeline {pipe_rate:.1f} items/s — {summary}"
        )
    print("pipeline/bare throughput (target >= 0.9): " + ", ".join(ratios))


if __name__ == "__main__":
    main()
