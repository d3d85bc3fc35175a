"""Experiments (issue 17): assignment, unchanged lists outside experiments, arms serving,
exposure and attribution through the spool (and across a restart), attribution rules,
statistics against hand-computed numbers, results, stop and promote."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from shop_recs.catalog import services, spool
from shop_recs.catalog.models import (
    Arm,
    Attribution,
    Customer,
    Experiment,
    Exposure,
    Interaction,
    Item,
    ItemEncoding,
    ItemStats,
    MerchRule,
)
from shop_recs.catalog.services import experiments as exp
from shop_recs.ranking import results as exp_results
from shop_recs.recsys.evaluation import abtest
from tests.conftest import write_vector

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _spool_dir(settings, tmp_path):
    settings.SHOP_RECS = {**settings.SHOP_RECS, "EXPERIMENT_SPOOL": str(tmp_path / "spool")}


@pytest.fixture
def catalog() -> list[Item]:
    items = []
    for n in range(12):
        item = Item.objects.create(
            external_id=f"i{n}", title=f"Item {n}", price=Decimal("10.00") + n, category="C"
        )
        ItemEncoding.objects.create(item=item, status="done")
        write_vector(item, "content", [1.0, n / 12, (n % 3) / 3], encoder="t")
        ItemStats.objects.create(item=item, score=float(n), views=n)
        items.append(item)
    for c in range(3):
        Customer.objects.create(external_id=f"c{c}")
    return items


def experiment(name: str = "exp", surface: str = "all", arms: tuple = (), **kw) -> Experiment:
    e = Experiment.objects.create(name=name, surface=surface, **kw)
    for n, spec in enumerate(arms or ({"name": "A"}, {"name": "B", "strategy": "popular"})):
        Arm.objects.create(experiment=e, is_control=n == 0, **spec)
    return e


# --------------------------------------------------------------------------- statistics


def test_wilson_interval_matches_hand_computed_values() -> None:
    # 10/100: centre (0.1 + 1.96²/200) / (1 + 1.96²/100) = 0.11480, half-width
    # 1.96 sqrt(0.0009 + 1.96²/40000) / 1.038415 = 0.05957 -> [0.0552, 0.1744] (the published
    # value, e.g. Newcombe 1998 table I style)
    w = abtest.wilson(10, 100)
    assert w.value == 0.1
    assert w.low == pytest.approx(0.05523, abs=5e-5) and w.high == pytest.approx(0.17437, abs=5e-5)
    # 0/10: [0, 0.2775]
    zero = abtest.wilson(0, 10)
    assert zero.low == 0.0 and zero.high == pytest.approx(0.27753, abs=5e-5)
    assert abtest.wilson(0, 0).high == 1.0
    with pytest.raises(ValueError):
        abtest.wilson(5, 4)


def test_newcombe_difference_matches_hand_computed_values() -> None:
    # 56/70 vs 48/80 (Newcombe 1998, example (a)): difference 0.2 with [0.0524, 0.3339]
    d = abtest.newcombe_diff(56, 70, 48, 80)
    assert d.value == pytest.approx(0.2)
    assert d.low == pytest.approx(0.0524, abs=5e-4) and d.high == pytest.approx(0.3339, abs=5e-4)
    assert d.significant


def test_welch_difference_matches_hand_computed_values() -> None:
    # b = 2,4,6,8 (mean 5, var 6.667); a = 1,2,3,4 (mean 2.5, var 1.667): se = sqrt(2.0833) =
    # 1.44338, df = 2.0833² / (0.41667²/3 + 1.66667²/3) = 4.41176; t(0.975, 4.41) lies between
    # the table's t(5) = 2.5706 and t(4) = 2.7764, 2.680 interpolated in 1/df
    d = abtest.welch_diff([2, 4, 6, 8], [1, 2, 3, 4])
    assert d.value == 2.5
    assert d.df == pytest.approx(4.41176, abs=1e-4)
    half = (d.high - d.low) / 2
    assert 2.5706 < half / 1.443376 < 2.7764
    assert half / 1.443376 == pytest.approx(2.680, abs=5e-3)
    assert not d.significant
    assert math.isinf(abtest.welch_diff([1], [1, 2]).high)


def test_srm_detects_a_skewed_split_only() -> None:
    fine = abtest.srm([5000, 5000], [50, 50])
    assert fine.p_value == 1.0 and not fine.mismatch
    # 5000 vs 4600 on 50/50: chi² = 2 * 200² / 4800 = 16.667; with 1 dof p = erfc(sqrt(chi²/2))
    skewed = abtest.srm([5000, 4600], [50, 50])
    assert skewed.chi2 == pytest.approx(16.6667, abs=1e-3)
    assert skewed.p_value == pytest.approx(math.erfc(math.sqrt(16.6667 / 2)), rel=1e-3)
    assert skewed.mismatch
    # three arms 50/30/20 with counts on the shares: no mismatch
    assert not abtest.srm([5020, 2990, 1990], [50, 30, 20]).mismatch
    assert abtest.srm([0, 10], [100, 0]).mismatch


# --------------------------------------------------------------------------- assignment


def test_shares_hold_on_ten_thousand_ids() -> None:
    counts = Counter(exp.arm_index("salt-1", f"s:{n}", [50, 30, 20]) for n in range(10_000))
    assert abs(counts[0] - 5000) < 200 and abs(counts[1] - 3000) < 200
    assert abs(counts[2] - 2000) < 200
    assert not abtest.srm([counts[0], counts[1], counts[2]], [50, 30, 20]).mismatch
    # another salt reshuffles the shoppers
    other = [exp.arm_index("salt-2", f"s:{n}", [50, 50]) for n in range(1000)]
    same = [exp.arm_index("salt-1", f"s:{n}", [50, 50]) for n in range(1000)]
    assert 350 < sum(a == b for a, b in zip(other, same, strict=True)) < 650


def test_assignment_is_sticky_across_processes() -> None:
    keys = [f"c:customer-{n}" for n in range(200)] + [f"s:sess{n}" for n in range(200)]
    here = [exp.arm_index("my-exp", k, [50, 25, 25]) for k in keys]
    code = (
        "import json, sys\n"
        "from shop_recs.catalog.services.experiments import arm_index\n"
        "keys = json.loads(sys.stdin.read())\n"
        "print(json.dumps([arm_index('my-exp', k, [50, 25, 25]) for k in keys]))\n"
    )
    env = {
        **os.environ,
        "PYTHONHASHSEED": "12345",  # a different str hash: the assignment must not use it
        "DJANGO_SETTINGS_MODULE": "shop_recs.settings",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
    }
    boot = "import django; django.setup()\n"
    done = subprocess.run(
        [sys.executable, "-c", boot + code],
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == here
    assert len(set(here)) == 3


def test_assignment_picks_the_running_experiment_of_the_surface(catalog) -> None:
    e = experiment(surface="similar")
    found = exp.assignment(surface="similar", session_id="abc")
    assert found is not None
    running, arm, key = found
    assert running.id == e.pk and key == "s:abc"
    assert arm.pk == list(e.arms.order_by("id"))[exp.arm_index(e.salt, "s:abc", [50, 50])].pk
    assert exp.assignment(surface="search", session_id="abc") is None
    assert exp.assignment(surface="similar") is None  # no key: no experiment
    customer = exp.assignment(surface="similar", customer_external_id="c1", session_id="abc")
    assert customer[2] == "c:c1"
    e.stopped_at = timezone.now()
    e.save()
    assert exp.assignment(surface="similar", session_id="abc") is None


# --------------------------------------------------------------------------- serving


def _strip(data: dict) -> dict:
    out = dict(data)
    assert len(out.pop("list_id")) == 32
    return out


def test_lists_outside_experiments_are_unchanged(catalog, client, settings) -> None:
    def similar() -> bytes:
        r = client.get("/api/v1/items/i3/similar/?k=5")
        assert r.status_code == 200
        return json.dumps(_strip(r.json()), sort_keys=True).encode()

    def recommended() -> bytes:
        r = client.post(
            "/api/v1/recommendations/",
            {"recent_item_ids": ["i2", "i5"], "k": 5},
            content_type="application/json",
        )
        assert r.status_code == 200
        return json.dumps(_strip(r.json()), sort_keys=True).encode()

    session = client.session
    session["shop_recs_sid"] = "shopper-1"
    session.save()
    before = (similar(), recommended())
    assert json.loads(before[0])["experiment"] is None and json.loads(before[0])["arm"] is None
    # an experiment on another surface, and a stopped one on these: nothing changes
    experiment("search only", surface="search")
    experiment("stopped", surface="all", stopped_at=timezone.now())
    experiment("later", surface="all", starts_at=timezone.now() + timedelta(days=1))
    assert (similar(), recommended()) == before
    assert spool.pending() == 0


def test_an_arm_serves_its_strategy_and_logs_its_lists(catalog, client) -> None:
    e = experiment(
        surface="similar",
        arms=(
            {"name": "content", "strategy": "content"},
            {"name": "popular", "strategy": "popular"},
        ),
    )
    arms = {a.name: a for a in e.arms.all()}
    seen = {}
    for n in range(40):
        client.cookies.clear()
        session = client.session
        session["shop_recs_sid"] = f"shopper-{n}"
        session.save()
        data = client.get("/api/v1/items/i3/similar/?k=4").json()
        expected = ["content", "popular"][exp.arm_index(e.salt, f"s:shopper-{n}", [50, 50])]
        assert data["experiment"] == "exp" and data["arm"] == expected
        ids = [r["item"]["external_id"] for r in data["results"]]
        seen[expected] = ids
        if expected == "popular":  # the most popular items, never the item itself
            assert ids == ["i11", "i10", "i9", "i8"] and data["space"] == "popular"
        else:
            assert data["space"] == "content"
    assert set(seen) == {"content", "popular"}
    assert Exposure.objects.count() == 0  # spooled, not written on the request path
    assert spool.pending() == 40
    assert exp.flush() == 40
    assert Exposure.objects.count() == 40 and spool.pending() == 0
    assert Exposure.objects.filter(arm=arms["popular"]).first().item_ids == [
        catalog[11].pk, catalog[10].pk, catalog[9].pk, catalog[8].pk
    ]  # fmt: skip


def test_an_arm_without_rules_ignores_them_and_extra_rules_apply_in_their_arm_only(
    catalog, client
) -> None:
    live = MerchRule.objects.create(name="no i11", action="exclude", target_item=catalog[11])
    extra = MerchRule.objects.create(
        name="pin i0", action="pin", target_item=catalog[0], position=1, is_enabled=False
    )
    e = experiment(
        surface="similar",
        arms=(
            {"name": "rules", "strategy": "popular"},
            {"name": "norules", "strategy": "popular", "rules": "off"},
        ),
    )
    _, off_arm = e.arms.order_by("id")
    off_arm.extra_rules.add(extra)
    by_arm = {}
    for n in range(30):
        client.cookies.clear()
        session = client.session
        session["shop_recs_sid"] = f"s{n}"
        session.save()
        data = client.get("/api/v1/items/i3/similar/?k=3").json()
        by_arm[data["arm"]] = [r["item"]["external_id"] for r in data["results"]]
    assert by_arm["rules"] == ["i10", "i9", "i8"]  # the live exclusion applies
    assert by_arm["norules"] == ["i0", "i11", "i10"]  # no live rules; its own pin does
    # promoting the arm without rules: its rule goes live, the live one off
    changes = exp_results.experiment_promote(experiment=e, arm=off_arm)
    live.refresh_from_db()
    extra.refresh_from_db()
    assert not live.is_enabled and extra.is_enabled
    assert any("pin i0" in c for c in changes)
    e.refresh_from_db()
    assert e.stopped_at is not None and e.promoted_arm == off_arm


# --------------------------------------------------------------------------- attribution


def _exposure(e: Experiment, arm: Arm, shopper: str, items: list[Item], at) -> Exposure:
    return Exposure.objects.create(
        list_id=exp.new_list_id(), experiment=e, arm=arm, shopper=shopper, surface="similar",
        item_ids=[i.pk for i in items], served_at=at,
    )  # fmt: skip


def _purchase(customer: str, item: Item, at, order: str = "o1", value: str | None = None):
    context = {"order_id": order} if value is None else {"order_id": order, "value": value}
    (outcome,) = services.interactions_record(
        events=[
            services.EventIn(
                item_id=item.external_id, event="purchase", customer_id=customer,
                occurred_at=at, idempotency_key=f"purchase:{order}:{item.external_id}",
                context=context,
            )
        ]
    )  # fmt: skip
    return outcome.interaction


def test_purchases_are_credited_within_the_window_edges(
    catalog, settings, django_capture_on_commit_callbacks
) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "EXPERIMENT_ATTRIBUTION_SECONDS": 3600}
    e = experiment()
    a = e.arms.get(name="A")
    t0 = timezone.now() - timedelta(hours=5)
    shown = _exposure(e, a, "c:c0", catalog[:3], t0)
    with django_capture_on_commit_callbacks(execute=True):
        at_edge = _purchase("c0", catalog[0], t0 + timedelta(seconds=3600), "o1")
        past = _purchase("c0", catalog[1], t0 + timedelta(seconds=3601), "o2")
        before = _purchase("c0", catalog[2], t0 - timedelta(seconds=1), "o3")
        same_time = _purchase("c0", catalog[2], t0, "o4")
        other = _purchase("c1", catalog[0], t0 + timedelta(seconds=10), "o5")
    exp.flush()
    credited = {x.interaction_id: x for x in Attribution.objects.all()}
    assert set(credited) == {at_edge.pk, same_time.pk}
    assert past.pk not in credited and before.pk not in credited and other.pk not in credited
    assert credited[at_edge.pk].exposure == shown and credited[at_edge.pk].revenue == Decimal(
        "10.00"
    )
    assert credited[at_edge.pk].position == 1 and credited[same_time.pk].position == 3


def test_a_purchase_is_credited_once_to_the_last_list(
    catalog, django_capture_on_commit_callbacks
) -> None:
    e = experiment()
    a, b = e.arms.order_by("id")
    t0 = timezone.now() - timedelta(hours=2)
    _exposure(e, a, "c:c0", catalog[:4], t0)
    last = _exposure(e, b, "c:c0", catalog[2:6], t0 + timedelta(minutes=30))
    with django_capture_on_commit_callbacks(execute=True):
        bought = _purchase("c0", catalog[3], t0 + timedelta(hours=1), "o9", value="25.50")
        # the checkout hook retried: the same order line again
        again = _purchase("c0", catalog[3], t0 + timedelta(hours=1), "o9", value="25.50")
    assert again.pk == bought.pk
    exp.flush()
    exp.flush()
    spool.append([{"t": "event", "id": bought.pk}])  # replayed by a crashed drain
    exp.flush()
    assert Attribution.objects.count() == 1
    credit = Attribution.objects.get()
    assert credit.exposure == last and credit.arm == b and credit.revenue == Decimal("25.50")


def test_clicks_name_their_list_through_tracking(
    catalog, client, django_capture_on_commit_callbacks
) -> None:
    e = experiment(surface="similar")
    session = client.session
    session["shop_recs_sid"] = "clicker"
    session.save()
    data = client.get("/api/v1/items/i3/similar/?k=4").json()
    assert data["arm"] in ("A", "B")
    first = data["results"][1]["item"]["external_id"]
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(
            "/api/v1/track/",
            {"events": [
                {"event": "click", "item_id": first, "list_id": data["list_id"], "position": 2},
                {"event": "cart", "item_id": first, "list_id": data["list_id"], "position": 2},
                # not in that list: not credited
                {"event": "click", "item_id": "i3", "list_id": data["list_id"], "position": 1},
            ]},
            content_type="application/json",
        )  # fmt: skip
    assert r.status_code == 200, r.content
    bad = client.post(
        "/api/v1/track/",
        {"event": "click", "item_id": first, "list_id": "not-a-list"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "list_id" in bad.json()
    exp.flush()
    kinds = sorted(Attribution.objects.values_list("kind", "position"))
    assert kinds == [("cart", 2), ("click", 2)]
    assert set(Attribution.objects.values_list("arm__name", flat=True)) == {data["arm"]}
    results = exp_results.experiment_results(experiment=e)
    row = next(r for r in results.arms if r.arm.name == data["arm"])
    assert (row.lists, row.clicked_lists, row.carted_lists, row.shoppers) == (1, 1, 1, 1)


def test_server_side_tracking_helpers_send_the_list(
    catalog, rf, django_capture_on_commit_callbacks
) -> None:
    from django.contrib.auth.models import AnonymousUser

    from shop_recs.storefront import tracking

    request = rf.get("/")
    request.user = AnonymousUser()
    request.session = {"shop_recs_sid": "helper"}
    with django_capture_on_commit_callbacks(execute=True):
        tracking.track_event(request, "i4", "cart", list_id="a" * 32, position=3)
    cart = Interaction.objects.get(event="cart")
    assert cart.context["list_id"] == "a" * 32 and cart.context["position"] == 3


# --------------------------------------------------------------------------- spool


def test_spooled_records_survive_a_killed_process(catalog, settings, tmp_path) -> None:
    e = experiment()
    a = e.arms.get(name="A")
    directory = tmp_path / "spool"
    code = (
        "import os, signal\n"
        "from django.conf import settings\n"
        f"settings.configure(SHOP_RECS={{'EXPERIMENT_SPOOL': {str(directory)!r}}}, "
        f"BASE_DIR={str(tmp_path)!r})\n"
        "from shop_recs.catalog import spool\n"
        f"spool.append([{{'t': 'exposure', 'list': '{'b' * 32}', 'exp': {e.pk}, "
        f"'arm': {a.pk}, 'shopper': 's:x', 'surface': 'similar', 'items': [1, 2], "
        "'at': '2026-01-01T00:00:00+00:00'}])\n"
        "with open(spool._location() + '/spool.jsonl', 'a') as fh:\n"
        '    fh.write(\'{"t": "exposure", "li\')\n'  # a line cut short by the crash
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert spool.pending() == 2
    assert exp.flush() == 2
    assert Exposure.objects.get().list_id == "b" * 32
    assert spool.pending() == 0


def test_a_redis_spool_survives_a_restart(catalog, settings) -> None:
    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/14"
    try:
        redis.Redis.from_url(url).ping()
    except Exception:
        pytest.skip("no Redis at 127.0.0.1:6379")
    client = redis.Redis.from_url(url)
    client.delete(spool.REDIS_KEY, f"{spool.REDIS_KEY}:lock")
    settings.SHOP_RECS = {**settings.SHOP_RECS, "EXPERIMENT_SPOOL": url}
    e = experiment()
    a = e.arms.get(name="A")
    code = (
        "import os, signal\n"
        "from django.conf import settings\n"
        f"settings.configure(SHOP_RECS={{'EXPERIMENT_SPOOL': {url!r}}}, BASE_DIR='/tmp')\n"
        "from shop_recs.catalog import spool\n"
        f"spool.append([{{'t': 'exposure', 'list': '{'c' * 32}', 'exp': {e.pk}, "
        f"'arm': {a.pk}, 'shopper': 's:y', 'surface': 'search', 'items': [3], "
        "'at': '2026-01-01T00:00:00+00:00'}])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120)
    try:
        assert spool.pending() == 1
        assert exp.flush() == 1
        assert Exposure.objects.get().list_id == "c" * 32
    finally:
        client.delete(spool.REDIS_KEY)


# --------------------------------------------------------------------------- results


def test_results_compare_arms_to_control_and_flag_srm(catalog) -> None:
    e = experiment(arms=({"name": "A", "share": 50}, {"name": "B", "share": 50}))
    a, b = e.arms.order_by("id")
    now = timezone.now() - timedelta(minutes=30)
    customer = Customer.objects.get(external_id="c0")
    # A: 100 shoppers, 10 clicked; B: 50 shoppers, 15 clicked -> SRM (100 vs 50 on 50/50)
    for arm, shoppers, clicks in ((a, 100, 10), (b, 50, 15)):
        for n in range(shoppers):
            x = _exposure(e, arm, f"s:{arm.name}{n}", catalog[:2], now)
            if n < clicks:
                i = Interaction.objects.create(
                    customer=customer, item=catalog[0], event="click", occurred_at=now,
                    context={"list_id": x.list_id},
                )  # fmt: skip
                Attribution.objects.create(
                    interaction=i, exposure=x, experiment=e, arm=arm, shopper=x.shopper,
                    kind="click", item_id=catalog[0].pk, position=1, occurred_at=now,
                )  # fmt: skip
    r = exp_results.experiment_results(experiment=e)
    ra, rb = r.arms
    assert r.control is ra and (ra.shoppers, rb.shoppers) == (100, 50)
    assert ra.ctr.value == 0.1 and ra.ctr.low == pytest.approx(0.05523, abs=5e-5)
    assert rb.diff["ctr"].value == pytest.approx(0.2)
    assert rb.diff["ctr"].significant
    assert r.srm.mismatch and r.srm.chi2 == pytest.approx(16.667, abs=1e-3)
    # the results page shows it in red, with the table and the charts
    from shop_recs.dashboard.admin.experiments import results_charts, results_rows

    rows = results_rows(r)
    assert rows[1]["d_ctr"].startswith("+20.00 pp") and rows[1]["d_ctr_sig"]
    assert all(svg.startswith("<svg") for svg in results_charts(r))


# --------------------------------------------------------------------------- model versions


def test_an_arm_serves_a_version_that_is_not_active(
    settings, tmp_path, client_for, admin_user, client
) -> None:
    from shop_recs.ranking.activation import model_activate
    from shop_recs.ranking.training import model_train
    from tests.admin_support import make_shop, tiny_settings

    settings.SHOP_RECS = tiny_settings(
        MODEL_DIR=str(tmp_path / "models"), EXPERIMENT_SPOOL=str(tmp_path / "spool"),
        EXPERIMENTS_CACHE_SECONDS=0, EXPERIMENT_FLUSH_SECONDS=0, RULES_CACHE_SECONDS=0,
    )  # fmt: skip
    make_shop()
    old = model_train()
    new = model_train(force=True)
    old.refresh_from_db()
    assert new.is_active and not old.is_active
    api = client_for("view_customer", username="reader")

    def lists() -> dict[str, dict]:
        return {
            f"c{u}": api.get(f"/api/v1/customers/c{u}/recommendations/?k=5").json()
            for u in range(12)
        }

    e = experiment(
        surface="recommendations",
        arms=({"name": "current"}, {"name": "previous", "model_version": old}),
    )
    served = lists()
    by_arm = {
        name: [c for c, d in served.items() if d["arm"] == name] for name in ("current", "previous")
    }
    assert by_arm["current"] and by_arm["previous"]
    for c in by_arm["previous"]:
        assert served[c]["model_version"] == old.pk
    for c in by_arm["current"]:
        assert served[c]["model_version"] == new.pk
    exp.flush()
    assert set(Exposure.objects.values_list("model_version_id", flat=True)) == {old.pk, new.pk}
    # what the arm served from memory is what the old version serves once active
    e.stopped_at = timezone.now()
    e.save()
    model_activate(version=old)
    again = lists()
    for c in by_arm["previous"]:
        ids = [r["item"]["external_id"] for r in served[c]["results"]]
        assert ids == [r["item"]["external_id"] for r in again[c]["results"]]
    # the old version's page shows the experiment's online results
    client.force_login(admin_user)
    page = client.get(f"/admin/shop_recs_catalog/modelversion/{old.pk}/change/").content.decode()
    assert 'id="recs-online"' in page and "previous" in page and e.name in page


# --------------------------------------------------------------------------- admin


def _arm_form(prefix: int, **values: str) -> dict[str, str]:
    base = {"name": "", "share": "50", "strategy": "model", "similar_space": "", "rules": "live"}
    return {f"arms-{prefix}-{k}": v for k, v in {**base, **values}.items()}


def _add_form(name: str, surface: str, *arms: dict[str, str]) -> dict[str, str]:
    data = {
        "name": name, "surface": surface, "starts_at_0": "2026-01-01", "starts_at_1": "00:00:00",
        "salt": "", "note": "", "arms-TOTAL_FORMS": str(len(arms)), "arms-INITIAL_FORMS": "0",
        "arms-MIN_NUM_FORMS": "0", "arms-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    for a in arms:
        data.update(a)
    return data


def test_admin_validates_arms_and_surfaces_and_guards_its_actions(
    catalog, client, admin_user
) -> None:
    client.force_login(admin_user)
    url = "/admin/shop_recs_catalog/experiment/add/"
    one_arm = client.post(url, _add_form("x", "all", _arm_form(0, name="A")))
    assert one_arm.status_code == 200 and "at least two arms" in one_arm.content.decode()
    ok = client.post(url, _add_form("x", "similar", _arm_form(0, name="A"), _arm_form(1, name="B")))
    assert ok.status_code == 302
    e = Experiment.objects.get(name="x")
    assert e.salt == "x" and e.arms.get(name="A").is_control  # the first arm by default
    clash = client.post(url, _add_form("y", "all", _arm_form(0, name="A"), _arm_form(1, name="B")))
    assert clash.status_code == 200 and "same surface" in clash.content.decode()
    results = f"/admin/shop_recs_catalog/experiment/{e.pk}/results/"
    page = client.get(results)
    assert page.status_code == 200 and 'id="recs-results"' in page.content.decode()
    assert client.get(f"/admin/shop_recs_catalog/experiment/{e.pk}/stop/").status_code == 405
    assert client.get("/admin/shop_recs_catalog/experiment/abc/results/").status_code == 404
    bad = client.post(f"/admin/shop_recs_catalog/experiment/{e.pk}/promote/", {"arm": "nope"})
    assert bad.status_code == 302 and Experiment.objects.get(pk=e.pk).promoted_arm is None
    client.post(f"/admin/shop_recs_catalog/experiment/{e.pk}/stop/")
    assert Experiment.objects.get(pk=e.pk).stopped_at is not None
    client.logout()
    assert client.get(results).status_code == 302  # to the login page


def test_a_flush_waits_for_a_drain_in_progress(catalog, tmp_path) -> None:
    import threading
    import time

    e = experiment()
    a = e.arms.get(name="A")
    exp.exposure_log(list_id="d" * 32, experiment_id=e.pk, arm_id=a.pk, shopper="s:z",
                     surface="similar", item_ids=[catalog[0].pk])  # fmt: skip
    held = threading.Event()

    def other_process_draining() -> None:
        with spool._locked(tmp_path / "spool" / ".drain.lock", "a"):
            held.set()
            time.sleep(0.5)

    thread = threading.Thread(target=other_process_draining)
    thread.start()
    held.wait(5)
    assert exp.flush(wait=False) == 0  # the background thread's flush: skip this round
    assert exp.flush() == 1  # the results page's: waits, then writes
    thread.join()
    assert Exposure.objects.filter(list_id="d" * 32).exists()
