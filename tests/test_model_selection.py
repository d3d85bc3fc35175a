"""Model selection through the app (issue 12): ``recs_train`` searches the model families on a
validation split of the shop's own events, stores the search on the version, and whatever
family wins serves every path — shoppers, anonymous sessions, new items from content alone,
similar items in the model's space, explanations, long exports.

Real bundled text encoder, real selection (``shop_recs.recsys.selection``) on a small planted
catalogue: four product families, shoppers who each stick to one family.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django.utils.module_loading import import_string

from shop_recs.catalog import services
from shop_recs.catalog.models import Customer, Item, ItemEmbedding, ModelVersion
from shop_recs.catalog.services import EventIn
from shop_recs.catalog.vectors import space_key
from shop_recs.conf import recs_settings
from shop_recs.encoding.service import items_encode
from shop_recs.ranking import registry
from shop_recs.ranking.recommend import recommendations
from shop_recs.ranking.training import model_train
from shop_recs.recsys.base import VectorRecommender

pytestmark = pytest.mark.django_db

PRODUCTS = {
    "shirt": [
        ("Linen summer shirt", "A breathable linen shirt with short sleeves."),
        ("Oxford cotton shirt", "A classic button-down cotton shirt for the office."),
        ("Denim work shirt", "A sturdy denim shirt with two chest pockets."),
        ("Silk blouse shirt", "A light silk shirt with a relaxed fit."),
        ("Striped polo shirt", "A striped cotton polo shirt with a soft collar."),
    ],
    "boot": [
        ("Leather ankle boots", "Waterproof leather boots for winter walks."),
        ("Hiking boots", "Rugged boots with a grippy sole for mountain trails."),
        ("Chelsea boots", "Suede boots with elastic side panels."),
        ("Rain boots", "Rubber boots that keep your feet dry in the rain."),
        ("Snow boots", "Insulated boots with a fleece lining for deep snow."),
    ],
    "bag": [
        ("Canvas tote bag", "A roomy canvas bag for shopping."),
        ("Leather backpack", "A backpack bag with a padded laptop sleeve."),
        ("Travel duffel bag", "A large duffel bag for weekend trips."),
        ("Crossbody bag", "A small crossbody bag with an adjustable strap."),
        ("Gym bag", "A sports bag with a shoe compartment."),
    ],
    "lamp": [
        ("Brass desk lamp", "An adjustable brass lamp for reading at the desk."),
        ("Floor lamp", "A tall lamp with a linen shade for the living room."),
        ("Bedside lamp", "A small dimmable lamp for the night stand."),
        ("Clip-on lamp", "A lamp that clips to a shelf, with a flexible neck."),
        ("Paper lantern lamp", "A round paper lamp shade with a warm glow."),
    ],
}
CATEGORY = {"shirt": "Shirts", "boot": "Boots", "bag": "Bags", "lamp": "Lamps"}
NAMES = list(PRODUCTS)
USERS = 120
PER_USER = 3
N_ITEMS = sum(len(p) for p in PRODUCTS.values())


def family_of(external_id: str) -> str:
    return external_id.split("-")[0]


def family_of_user(external_id: str) -> str:
    return NAMES[int(external_id[1:]) % len(NAMES)]


@pytest.fixture
def shop(settings, tmp_path) -> None:
    """20 encoded items in four families; 120 shoppers with 3 events each (views, then a
    purchase) on 3 of their family's 5 items."""
    settings.SHOP_RECS = {**settings.SHOP_RECS, "MODEL_DIR": str(tmp_path / "models")}
    for family, products in PRODUCTS.items():
        for n, (title, description) in enumerate(products):
            services.item_create(
                external_id=f"{family}-{n}",
                title=title,
                description=description,
                category=CATEGORY[family],
                brand="Acme",
                announce=False,
            )
    items_encode(item_ids=list(Item.objects.values_list("pk", flat=True)))
    start = timezone.now() - timedelta(days=30)
    events = []
    for u in range(USERS):
        family = NAMES[u % len(NAMES)]
        services.customer_create(external_id=f"c{u}")
        for j in range(PER_USER):
            events.append(
                EventIn(
                    item_id=f"{family}-{(u // len(NAMES) + 2 * j) % 5}",
                    event="purchase" if j == PER_USER - 1 else "view",
                    customer_id=f"c{u}",
                    occurred_at=start + timedelta(hours=u * 3 + j),
                )
            )
    assert all(o.status == "created" for o in services.interactions_record(events=events))


def test_recs_train_selects_a_model_and_stores_the_search(shop, tmp_path) -> None:
    assert recs_settings.MODEL_SELECTION
    out = io.StringIO()
    call_command("recs_train", stdout=out, stderr=io.StringIO())
    version = ModelVersion.objects.get()
    assert version.status == "ready" and version.is_active
    selection = version.selection
    table, chosen = selection["table"], selection["chosen"]
    assert table and all(
        {"family", "params", "recall@10", "ndcg@10", "seconds", "status"} <= set(row)
        for row in table
    )
    assert chosen["family"] in {row["family"] for row in table}
    assert selection["budget_seconds"] == float(recs_settings.TRAIN_BUDGET_SECONDS)
    # the search and the final fit stay near the budget (a candidate may overrun its share)
    assert selection["seconds"] <= 2 * selection["budget_seconds"] + 10
    # the stored kind is the class that loads the artefact, dim its vector width
    cls = import_string(version.kind)
    assert issubclass(cls, VectorRecommender)
    registry._cache.clear()
    model = registry.load_model(version)
    assert isinstance(model, cls) and version.dim == model.vector_dim
    hybrid = ItemEmbedding.objects.filter(space=space_key("hybrid", version.pk))
    assert hybrid.count() == N_ITEMS and {e.dim for e in hybrid} == {version.dim}
    # the version's metrics are the chosen candidate's validation figures
    for name in ("recall@10", "ndcg@10"):
        assert version.metrics[name] == pytest.approx(chosen["validation"][name])
    assert 0.0 <= version.metrics["recall@10"] <= 1.0
    line = out.getvalue()
    assert f"family {chosen['family']} chosen of {len(table)} candidates" in line
    assert f"validation recall@10 {version.metrics['recall@10']:.4f}" in line
    assert "; active." in line


@pytest.mark.parametrize("family", ["hybrid", "ease", "blend"])
def test_every_family_serves_every_path(
    family, shop, settings, anon, api, client_for, django_capture_on_commit_callbacks, tmp_path
) -> None:
    # a budget that fits a few candidates of each family even on a busy machine
    settings.SHOP_RECS = {
        **settings.SHOP_RECS,
        "MODEL_FAMILIES": [family],
        "TRAIN_BUDGET_SECONDS": 30,
    }
    version = model_train()
    assert version.is_active and version.selection["chosen"]["family"] == family, version.selection
    registry._cache.clear()
    model = registry.load_model(version)
    assert getattr(model, "family", family) == family

    # known shoppers: the first pick is from their family, explained by their history
    hits, explained = 0, 0
    for customer in Customer.objects.all():
        result = recommendations(customer=customer, k=2)
        top = result.results[0]
        hits += family_of(top.item.external_id) == family_of_user(customer.external_id)
        explained += top.because is not None and family_of(top.because) == family_of(
            top.item.external_id
        )
        assert top.source == "model"
        seen = {h.external_id for h in result.history}
        assert not seen & {r.item.external_id for r in result.results}
    # a random pick would be from the shopper's family for 2 in 17 shoppers
    assert hits / USERS >= 0.75, (family, hits)
    assert explained / USERS >= 0.75, (family, explained)
    body = client_for("view_customer").get("/api/v1/customers/c1/recommendations/?k=2").json()
    assert body["model_version"] == version.pk
    assert body["results"][0]["reason"].startswith("because you")

    # an anonymous session: its recent items alone
    viewed = ["boot-0", "boot-1", "boot-2"]
    body = anon.post(
        "/api/v1/recommendations/", {"recent_item_ids": viewed, "k": 2}, format="json"
    ).json()
    assert body["history"] == viewed
    results = body["results"]
    assert {family_of(r["item"]["external_id"]) for r in results} == {"boot"}
    assert results[0]["source"] == "model" and results[0]["because"] in viewed

    # similar items in the model's space
    similar = anon.get("/api/v1/items/lamp-0/similar/?space=hybrid&k=3").json()
    assert similar["space"] == "hybrid"
    assert sum(family_of(r["item"]["external_id"]) == "lamp" for r in similar["results"]) >= 2

    # an item created after training: a vector from its content alone, served at once
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/items/",
            {
                "external_id": "lamp-new",
                "title": "Industrial pendant lamp",
                "description": "A metal lamp that hangs over the dining table.",
                "category": "Lamps",
                "brand": "Acme",
            },
            format="json",
        )
        assert response.status_code == 201
    assert ItemEmbedding.objects.filter(
        item__external_id="lamp-new", space=space_key("hybrid")
    ).exists()
    similar = api.get("/api/v1/items/lamp-new/similar/?space=hybrid&k=3").json()
    assert sum(family_of(r["item"]["external_id"]) == "lamp" for r in similar["results"]) >= 2
    picks = set()
    for u in range(3, USERS, len(NAMES)):  # lamp lovers
        picks |= {r.item.external_id for r in recommendations(
            customer=Customer.objects.get(external_id=f"c{u}"), k=3).results}  # fmt: skip
    assert "lamp-new" in picks
    assert ModelVersion.objects.count() == 1  # no retraining

    # a long export (k above what one HNSW scan returns) lists every item not excluded
    target = tmp_path / "recs.jsonl"
    call_command("recs_export", "--k", "600", "--out", str(target), stdout=io.StringIO())
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(lines) == USERS
    # 21 items, minus the 3 each shopper saw (the purchase among them)
    assert all(len(line["items"]) == N_ITEMS + 1 - PER_USER for line in lines)
    assert all(len(set(line["items"])) == len(line["items"]) for line in lines)


def test_model_selection_off_trains_the_configured_class(shop, settings) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "MODEL_SELECTION": False}
    version = model_train()
    assert version.selection == {}
    assert version.kind == "shop_recs.recsys.hybrid.model.HybridRecommender"
    assert version.history and "loss" in json.dumps(version.history)


def test_a_version_naming_a_class_that_is_not_a_model_does_not_load(db, tmp_path) -> None:
    artefact = tmp_path / "m"
    artefact.mkdir()
    (artefact / "config.json").write_text("{}")
    version = ModelVersion.objects.create(
        kind="shop_recs.catalog.models.Item", status="ready", artefact=str(artefact)
    )
    registry._cache.clear()
    with pytest.raises(TypeError, match=r"not a shop_recs\.recsys\.base\.VectorRecommender"):
        registry.load_model(version)
    version.kind = "shop_recs.recsys.nothing.Here"
    with pytest.raises(ImportError, match="does not import"):
        registry.load_model(version)
