"""What the plugin adds to a shop's product save: latency of a back-office save with the item
source configured, against the same save with the plugin's handlers paused
(``shop_recs.storefront.source.paused()``).

    python bench/mirror.py [--saves 300] [--delay 2]

A "save" is what a back office does for one product edit, in one transaction: the product
row, two stock records (price, stock), a category link, and a second edit of the stock. The
shop is the multi-table test shop (``tests/tableshop``) on a throwaway embedded PostgreSQL;
the mapping is the README's for such shops (reducers, WATCH, PARENT). Saves with and without
the plugin alternate, so drift of the machine hits both alike. The mirroring itself runs in
the queue's background thread (no broker here), after ``--delay`` seconds without changes;
it is timed separately (it is not part of the shop's request).

Prints p50/p95/p99 per variant and the added latency (with - without) at p50 and p99.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=300, help="saves per variant")
    parser.add_argument("--delay", type=float, default=2.0, help="MIRROR_DELAY_SECONDS")
    args = parser.parse_args()

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"  # a throwaway embedded database
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction
    from django.test.utils import override_settings

    from shop_recs.catalog.models import Item
    from shop_recs.storefront.source import mirror_queue, paused
    from tests.tableshop.models import Category, Product, ProductCategory, StockRecord
    from tests.test_source_tables import SOURCE

    call_command("migrate", verbosity=0)
    category = Category.objects.create(name="Shirts")

    def back_office_save(n: int) -> float:
        started = time.perf_counter()
        with transaction.atomic():
            product = Product.objects.create(upc=f"b-{n}", title=f"Linen shirt {n}")
            record = StockRecord.objects.create(
                product=product, partner_sku=f"a-{n}", price=Decimal("39.00"), num_in_stock=3
            )
            StockRecord.objects.create(
                product=product, partner_sku=f"b-{n}", price=Decimal("35.00"), num_in_stock=0
            )
            ProductCategory.objects.create(product=product, category=category)
            record.num_in_stock = 2
            record.save()
        return (time.perf_counter() - started) * 1000

    plugin = {**settings.SHOP_RECS, "ITEM_SOURCE": SOURCE, "MIRROR_DELAY_SECONDS": args.delay}
    timings: dict[str, list[float]] = {"without plugin": [], "with plugin": []}
    with override_settings(SHOP_RECS=plugin):
        # warm up (connections, the encoders loaded by the first mirroring)
        for n in range(5):
            back_office_save(-1 - n)
        mirror_queue.drain()
        for n in range(args.saves):
            with paused():  # the same save, the plugin's handlers doing nothing
                timings["without plugin"].append(back_office_save(2 * n))
            timings["with plugin"].append(back_office_save(2 * n + 1))
        started = time.perf_counter()
        mirror_queue.drain(timeout=3600)
        drained = time.perf_counter() - started
    mirrored = Item.objects.filter(external_id__startswith="b-").count() - 5

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]

    print(
        f"{args.saves} back-office saves per variant (product, 2 stock records, a category, "
        f"a stock edit; one transaction), MIRROR_DELAY_SECONDS={args.delay}"
    )
    print("| variant | p50 ms | p95 ms | p99 ms | mean ms |")
    print("|---|---|---|---|---|")
    for name, values in timings.items():
        print(
            f"| {name} | {statistics.median(values):.2f} | {pct(values, 0.95):.2f} | "
            f"{pct(values, 0.99):.2f} | {statistics.fmean(values):.2f} |"
        )
    with_, without_ = timings["with plugin"], timings["without plugin"]
    print(
        f"added by the plugin: p50 {statistics.median(with_) - statistics.median(without_):+.2f} "
        f"ms, p99 {pct(with_, 0.99) - pct(without_, 0.99):+.2f} ms"
    )
    print(
        f"mirrored outside the requests: {mirrored} items; the queue's last batch finished "
        f"{drained:.1f} s after the last save"
    )


if __name__ == "__main__":
    main()
