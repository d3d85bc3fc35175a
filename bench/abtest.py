"""A/B test simulator: a synthetic population through the real endpoints and tracking.

    python bench/abtest.py [--shoppers 4000] [--aa-seeds 20] [--aa-shoppers 400]
                           [--srm-shoppers 1500] [--clients 4] [--workers 2]

A synthetic catalogue (200 products with stored content vectors and popularity, no encoders)
goes into a fresh embedded PostgreSQL, and gunicorn serves the app on loopback. Each simulated
shopper is a customer that asks ``GET /api/v1/customers/{id}/recommendations/?k=8`` once (a
token with view_customer, as a shop's back end would), reads the ``arm`` and ``list_id`` of the
answer and, by construction, clicks the list with probability ``--ctr-a`` in arm A and
``--ctr-b`` in arm B (the planted uplift is their difference), at a position drawn from a
decaying distribution. A click may lead to a cart add (``--p-cart``) and that to a purchase
(``--p-buy``) of the item at its price. Clicks and cart adds are sent to ``POST
/api/v1/events/`` with the list id and position in their context; purchases with the order's
line value. The server spools the exposures and events; this process writes them
(``recs_experiments_flush`` does the same) and computes the results as the admin page does.

Three parts:

1. A/B (50/50, B's clicks planted higher): the measured CTR uplift with its 95 % interval
   (Newcombe), which must cover the planted uplift; conversion and revenue per shopper too.
2. A/A over ``--aa-seeds`` experiments (each its own salt, both arms alike): the share of seeds
   whose CTR difference is significant at 5 % (must be at most 10 %), and how many flag SRM.
3. SRM: a 50/50 experiment whose arm-B shoppers are dropped with probability ``--srm-drop``
   before their first request (a broken redirect): the chi-square check must fire.

Prints one table per part and exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from decimal import Decimal

import requests
from _common import free_port, setup_django, start_gunicorn


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shoppers", type=int, default=4000, help="shoppers of the A/B test")
    p.add_argument("--aa-seeds", type=int, default=20)
    p.add_argument("--aa-shoppers", type=int, default=400)
    p.add_argument("--srm-shoppers", type=int, default=1500)
    p.add_argument("--srm-drop", type=float, default=0.2)
    p.add_argument("--ctr-a", type=float, default=0.10)
    p.add_argument("--ctr-b", type=float, default=0.14)
    p.add_argument("--p-cart", type=float, default=0.4)
    p.add_argument("--p-buy", type=float, default=0.5)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    return p.parse_args()


def build_catalogue(rng: random.Random) -> None:
    from shop_recs.catalog.models import Item, ItemEmbedding, ItemEncoding, ItemStats

    if Item.objects.exists():
        return
    items = Item.objects.bulk_create(
        [
            Item(
                external_id=f"p{n}",
                title=f"Product {n}",
                category=f"cat{n % 5}",
                price=Decimal(rng.randint(500, 9000)) / 100,
            )
            for n in range(200)
        ]
    )
    ItemEncoding.objects.bulk_create([ItemEncoding(item=i, status="done") for i in items])
    ItemStats.objects.bulk_create(
        [ItemStats(item=i, score=rng.random() * 100, views=rng.randint(1, 100)) for i in items]
    )
    ItemEmbedding.objects.bulk_create(
        [
            ItemEmbedding(
                item=i,
                space="content",
                dim=16,
                vector=[rng.gauss(0, 1) for _ in range(16)],
                encoder="bench",
                encoder_version="1",
                content_hash="x",
            )
            for i in items
        ]
    )


def make_experiment(name: str, *, salt: str, shares: tuple[float, float] = (50, 50)) -> object:
    from shop_recs.catalog.models import Arm, Experiment

    for running in Experiment.objects.filter(stopped_at__isnull=True):
        running.stopped_at = running.starts_at  # nothing of it counts any more
        running.save()
    experiment = Experiment.objects.create(name=name, surface="recommendations", salt=salt)
    Arm.objects.create(
        experiment=experiment, name="A", is_control=True, share=shares[0], strategy="popular"
    )
    Arm.objects.create(experiment=experiment, name="B", share=shares[1], strategy="content")
    return experiment


def make_customers(prefix: str, n: int) -> list[str]:
    from shop_recs.catalog.models import Customer

    ids = [f"{prefix}-{i}" for i in range(n)]
    Customer.objects.bulk_create([Customer(external_id=c) for c in ids], ignore_conflicts=True)
    return ids


class Simulator:
    def __init__(self, url: str, token: str, args: argparse.Namespace, prices: dict) -> None:
        self.url, self.token, self.args, self.prices = url, token, args, prices
        self.errors = 0
        self.requests = 0
        self.lock = threading.Lock()

    def run(
        self, customers: list[str], ctr: dict[str, float], seed: int, skip: object = None
    ) -> dict[str, int]:
        """Every customer asks for one list and maybe clicks, adds to cart and buys."""
        served: dict[str, int] = {}
        chunks = [customers[i :: self.args.clients] for i in range(self.args.clients)]

        def client(n: int, mine: list[str]) -> None:
            rng = random.Random(seed * 1000 + n)
            session = requests.Session()
            session.headers["Authorization"] = f"Token {self.token}"
            events: list[dict] = []
            for c in mine:
                if skip is not None and skip(c, rng):
                    continue
                r = session.get(f"{self.url}/api/v1/customers/{c}/recommendations/?k=8", timeout=60)
                with self.lock:
                    self.requests += 1
                if r.status_code != 200:
                    with self.lock:
                        self.errors += 1
                    continue
                data = r.json()
                arm = data["arm"]
                with self.lock:
                    served[arm] = served.get(arm, 0) + 1
                results = data["results"]
                if not results or rng.random() >= ctr[arm]:
                    continue
                # position: geometric-like decay over the list
                weights = [0.5**j for j in range(len(results))]
                pos = rng.choices(range(len(results)), weights=weights)[0]
                item = results[pos]["item"]["external_id"]
                ctx = {"list_id": data["list_id"], "position": pos + 1}
                events.append({"event": "click", "item_id": item, "customer_id": c, "context": ctx})
                if rng.random() < self.args.p_cart:
                    events.append(
                        {"event": "cart", "item_id": item, "customer_id": c, "context": ctx}
                    )
                    if rng.random() < self.args.p_buy:
                        events.append(
                            {
                                "event": "purchase",
                                "item_id": item,
                                "customer_id": c,
                                "idempotency_key": f"purchase:{c}:{item}",
                                "context": {"order_id": c, "value": str(self.prices[item])},
                            }
                        )
                if len(events) >= 100:
                    self.send(session, events)
                    events = []
            self.send(session, events)

        threads = [
            threading.Thread(target=client, args=(n, chunk)) for n, chunk in enumerate(chunks)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return served

    def send(self, session: requests.Session, events: list[dict]) -> None:
        if not events:
            return
        r = session.post(f"{self.url}/api/v1/events/", json={"events": events}, timeout=60)
        with self.lock:
            self.requests += 1
            if r.status_code != 200:
                self.errors += 1


def results_of(experiment: object) -> object:
    from shop_recs.catalog.services import experiments as exp_services
    from shop_recs.ranking.results import experiment_results

    time.sleep(0.5)  # the last events' after-commit spooling
    exp_services.flush()
    return experiment_results(experiment=experiment)


def fmt(i: object, scale: float = 100, unit: str = "%") -> str:
    return f"{scale * i.value:7.2f}{unit} [{scale * i.low:6.2f}, {scale * i.high:6.2f}]"


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    setup_django(args.database_url)
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from shop_recs.catalog.models import Item
    from shop_recs.catalog.services.experiments import arm_index

    rng = random.Random(args.seed)
    build_catalogue(rng)
    prices = {e: p for e, p in Item.objects.values_list("external_id", "price")}
    user = get_user_model().objects.create_superuser(f"bench{time.time_ns()}", "b@example.com", "x")
    token = Token.objects.create(user=user).key
    port = free_port()
    server = start_gunicorn(
        port, args.workers, {"SHOP_RECS_EXPERIMENTS_CACHE_SECONDS": "0"}, threads=4
    )
    sim = Simulator(f"http://127.0.0.1:{port}", token, args, prices)
    failures = []
    try:
        # 1. A/B with a planted uplift
        planted = args.ctr_b - args.ctr_a
        e = make_experiment("bench A/B", salt=f"ab-{args.seed}")
        t0 = time.monotonic()
        sim.run(make_customers("ab", args.shoppers), {"A": args.ctr_a, "B": args.ctr_b}, args.seed)
        ab = results_of(e)
        _, b = ab.arms
        print(
            f"\n== A/B: {args.shoppers} shoppers, planted CTR A {args.ctr_a:.2%} / B "
            f"{args.ctr_b:.2%} (uplift {planted * 100:+.2f} pp), {time.monotonic() - t0:.0f} s"
        )
        print(
            f"{'arm':<4} {'shoppers':>8} {'lists':>6} {'CTR [95% CI]':>28} "
            f"{'conversion [95% CI]':>28} {'revenue/shopper [95% CI]':>30}"
        )
        for r in ab.arms:
            print(
                f"{r.arm.name:<4} {r.shoppers:>8} {r.lists:>6} {fmt(r.ctr):>28} "
                f"{fmt(r.conversion):>28} {fmt(r.revenue_per_shopper, 1, ''):>30}"
            )
        d = b.diff["ctr"]
        covered = d.low <= planted <= d.high
        print(
            f"measured CTR uplift B - A: {d.value * 100:+.2f} pp, 95% CI "
            f"[{d.low * 100:+.2f}, {d.high * 100:+.2f}] pp; planted {planted * 100:+.2f} pp "
            f"{'covered' if covered else 'NOT covered'}; significant: {d.significant}"
        )
        dc, dr = b.diff["conversion"], b.diff["revenue_per_shopper"]
        print(
            f"conversion B - A: {dc.value * 100:+.2f} pp [{dc.low * 100:+.2f}, "
            f"{dc.high * 100:+.2f}]; revenue/shopper B - A: {dr.value:+.3f} "
            f"[{dr.low:+.3f}, {dr.high:+.3f}] (Welch)"
        )
        print(
            f"SRM: chi2 {ab.srm.chi2:.2f}, p {ab.srm.p_value:.3f} -> "
            f"{'MISMATCH' if ab.srm.mismatch else 'ok'}"
        )
        if not covered:
            failures.append("the A/B interval does not cover the planted uplift")
        if ab.srm.mismatch:
            failures.append("SRM fired on a correct 50/50 split")

        # 2. A/A over seeds
        print(
            f"\n== A/A: {args.aa_seeds} experiments x {args.aa_shoppers} shoppers, both arms "
            f"clicked at {args.ctr_a:.2%}"
        )
        print(
            f"{'seed':>4} {'A lists':>7} {'B lists':>7} {'CTR B - A [95% CI] (pp)':>30} "
            f"{'sig':>4} {'SRM p':>7}"
        )
        fp = srm_fp = other_fp = 0
        t0 = time.monotonic()
        for seed in range(args.aa_seeds):
            e = make_experiment(f"bench A/A {seed}", salt=f"aa-{args.seed}-{seed}")
            customers = make_customers(f"aa{seed}", args.aa_shoppers)
            sim.run(customers, {"A": args.ctr_a, "B": args.ctr_a}, 100 + seed)
            res = results_of(e)
            ra, rb = res.arms
            d = rb.diff["ctr"]
            fp += d.significant
            srm_fp += res.srm.mismatch
            other_fp += any(
                rb.diff[k].significant for k in ("cart_rate", "conversion", "revenue_per_shopper")
            )
            print(
                f"{seed:>4} {ra.lists:>7} {rb.lists:>7} {d.value * 100:+9.2f} "
                f"[{d.low * 100:+6.2f}, {d.high * 100:+6.2f}]{'':>3} "
                f"{'yes' if d.significant else 'no':>4} {res.srm.p_value:7.3f}"
            )
        rate = fp / max(args.aa_seeds, 1)
        print(
            f"A/A false-positive rate (CTR, 5% level): {fp}/{args.aa_seeds} = {rate:.0%} "
            f"(check <= 10%: {'ok' if rate <= 0.10 else 'FAILED'}); seeds with any other "
            f"metric significant: {other_fp}; SRM false alarms: {srm_fp}; "
            f"{time.monotonic() - t0:.0f} s"
        )
        if rate > 0.10:
            failures.append(f"A/A false-positive rate {rate:.0%} > 10%")

        # 3. SRM on a deliberately skewed split
        e = make_experiment("bench SRM", salt=f"srm-{args.seed}")
        customers = make_customers("srm", args.srm_shoppers)

        def drop_b(c: str, rng: random.Random) -> bool:
            return arm_index(e.salt, f"c:{c}", [50, 50]) == 1 and rng.random() < args.srm_drop

        sim.run(customers, {"A": args.ctr_a, "B": args.ctr_a}, 999, skip=drop_b)
        res = results_of(e)
        print(
            f"\n== SRM: 50/50 configured, {args.srm_drop:.0%} of arm B's shoppers lost before "
            f"their first request"
        )
        print(
            f"shoppers A {res.arms[0].shoppers}, B {res.arms[1].shoppers} (expected "
            f"{res.srm.expected[0]:.0f} each); chi2 {res.srm.chi2:.2f}, p {res.srm.p_value:.2e} "
            f"-> {'SRM flagged' if res.srm.mismatch else 'NOT flagged'}"
        )
        if not res.srm.mismatch:
            failures.append("SRM did not fire on the skewed split")
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"\n{sim.requests} requests, {sim.errors} errors, {time.monotonic() - started:.0f} s "
        f"in all; checks: {'all passed' if not failures else '; '.join(failures)}"
    )
    if failures or sim.errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
