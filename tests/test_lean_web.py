"""Lean web processes: serving never imports torch where a broker is configured.

The hybrid model's user tower runs in numpy on the stored vectors (equal to the torch model),
and search queries are encoded by a real encode worker (Celery, a real Redis broker and
result backend), so a web process that served similar items, recommendations, an item and a
search still has no torch in ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from shop_recs.catalog import services
from shop_recs.catalog.models import Item, ItemEmbedding, ModelVersion
from shop_recs.catalog.services import EventIn
from shop_recs.catalog.vectors import space_key
from shop_recs.celery import app as celery_app
from shop_recs.embedded_db import database_url
from shop_recs.encoding.service import items_encode
from shop_recs.ranking.registry import load_model, load_serving_model
from shop_recs.ranking.training import model_train
from shop_recs.recsys.hybrid import HybridRecommender, HybridServingModel
from shop_recs.search import query as search_query
from tests.celery_support import ROOT, Workers, redis_broker
from tests.test_hybrid import FAST, make_catalogue

# --------------------------------------------------------------------------- numpy tower


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # scoring and history parts of one width: no output map
        {"dim": 12, "input_dim": 8, "max_history": 3, "user_ids": True},  # a linear map, trimming
    ],
)
def test_numpy_user_tower_equals_the_torch_model(overrides, tmp_path) -> None:
    dataset, _, _ = make_catalogue(seed=1)
    config = {**FAST, "max_epochs": 3, **overrides}
    model = HybridRecommender(seed=0, **config).fit(dataset, progress=False)
    model.save(tmp_path / "m")
    lean = HybridServingModel.load(tmp_path / "m")
    assert (lean.vector_dim, lean.dim, lean.version) == (model.vector_dim, model.dim, model.version)
    assert lean.feature_dims == model.feature_dims
    items = model.all_item_vectors()
    users = dataset.user_map.to_list()
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(60):
        user = None if trial % 3 == 0 else users[int(rng.integers(0, len(users)))]
        n = int(rng.integers(1 if user is None else 0, 7))
        rows = rng.integers(0, len(items), size=n)
        weights = None
        if trial % 2:
            weights = rng.choice([1.0, 2.0, 8.0, 0.0], size=n).astype(np.float32)
            if user is None and n:
                weights[-1] = 1.0  # the torch tower needs one valid item without a user
        expected = model.user_vector(user, items[rows], weights)
        got = lean.user_vector(user, items[rows], weights)
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        checked += 1
    assert checked == 60
    # a known shopper without recent items: the history kept from training, as in torch
    np.testing.assert_allclose(
        lean.user_vector(users[5], np.zeros((0, model.vector_dim), np.float32)),
        model.user_vector(users[5], np.zeros((0, model.vector_dim), np.float32)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_importing_the_hybrid_package_and_its_serving_model_imports_no_torch() -> None:
    code = (
        "import sys; import shop_recs.recsys.hybrid as h; h.HybridServingModel; h.HybridConfig;"
        " print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False", out.stderr


# --------------------------------------------------------------------------- web process

FAMILIES = {
    "shirt": ["Linen summer shirt", "Oxford cotton shirt", "Denim work shirt"],
    "boot": ["Leather ankle boots", "Hiking boots", "Rain boots"],
    "bag": ["Canvas tote bag", "Leather backpack", "Travel duffel bag"],
}

WEB_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from django.test import Client
    client = Client()
    out = {}
    def hit(name, response):
        out[name] = [response.status_code, json.loads(response.content or b"null")]
    hit("similar", client.get("/api/v1/items/shirt-0/similar/?k=3"))
    hit("similar_text", client.get("/api/v1/items/boot-0/similar/?space=text&k=3"))
    hit("recommendations", client.post(
        "/api/v1/recommendations/", {"recent_item_ids": ["bag-0", "bag-1"], "k": 3},
        content_type="application/json"))
    hit("item", client.get("/api/v1/items/bag-2/"))
    hit("search", client.get("/api/v1/search/?q=waterproof+boots+for+walking&k=3"))
    hit("search_again", client.get("/api/v1/search/?q=waterproof+boots+for+walking&k=3"))
    out["torch"] = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))[:5]
    out["encoders"] = "sentence_transformers" in sys.modules
    # VmHWM: this process's peak (ru_maxrss would carry the forking pytest's over exec)
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    out["rss_mb"] = int(status["VmHWM"].split()[0]) / 1024
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture
def trained_shop(db, settings):
    """Nine encoded items in three families, shoppers who stay in one, an active hybrid model
    (the family whose training model needs torch and whose serving tower does not)."""
    settings.SHOP_RECS = {**settings.SHOP_RECS, "MODEL_SELECTION": False}
    for family, titles in FAMILIES.items():
        for n, title in enumerate(titles):
            services.item_create(
                external_id=f"{family}-{n}", title=title, category=family, brand="Acme"
            )
    items_encode(item_ids=list(Item.objects.values_list("pk", flat=True)))
    start = timezone.now() - timedelta(days=10)
    events = []
    for u in range(60):
        family = list(FAMILIES)[u % 3]
        for j in range(3):
            events.append(
                EventIn(
                    item_id=f"{family}-{(u // 3 + j) % 3}",
                    event="view",
                    session_id=f"s{u}",
                    occurred_at=start + timedelta(hours=u * 3 + j),
                )
            )
    services.interactions_record(events=events)
    version = model_train()
    assert version.is_active
    return version


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_web_process_with_a_broker_serves_every_endpoint_without_torch(
    trained_shop, tmp_path
) -> None:
    with redis_broker(tmp_path) as url, Workers(url) as workers:
        # the encode worker: its own queue for search queries, encoders loaded on demand
        queues = f"encode={workers.queue}"
        workers.start({"SHOP_RECS_WORKER_WARMUP": "0", "SHOP_RECS_TASK_QUEUES": queues})
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "shop_recs.settings",
            "DATABASE_URL": database_url(connection.settings_dict),
            "CELERY_BROKER_URL": url,
            "SHOP_RECS_QUEUE": f"{workers.queue}-default",  # nothing else may reach it
            "SHOP_RECS_TASK_QUEUES": queues,
            "SHOP_RECS_SEARCH_ENCODE_TIMEOUT": "120",  # the worker loads MiniLM first
            "SHOP_RECS_THROTTLE_ANON": "",
            "DJANGO_MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        }
        env.pop("SHOP_RECS_EMBEDDED_CLEANUP", None)
        done = subprocess.run(
            [sys.executable, "-c", WEB_SCRIPT],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout[-2000:] + done.stderr[-3000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))
    for name in ("similar", "similar_text", "recommendations", "item", "search"):
        assert out[name][0] == 200, (name, out[name])
    similar = out["similar"][1]
    assert similar["space"] == "hybrid" and len(similar["results"]) == 3
    recs = out["recommendations"][1]
    assert recs["model_version"] == trained_shop.pk
    assert [r["source"] for r in recs["results"]] == ["model"] * 3
    assert recs["results"][0]["item"]["external_id"] == "bag-2"  # the family's unseen item
    search = out["search"][1]
    assert search["spaces"] == ["text"] and search["results"][0]["item"]["category"] == "boot"
    # the same results from the cached query vector (each served list has its own list id)
    again = {k: v for k, v in out["search_again"][1].items() if k != "list_id"}
    assert again == {k: v for k, v in search.items() if k != "list_id"}
    assert out["torch"] == [] and out["encoders"] is False, out
    assert out["rss_mb"] <= 600, out["rss_mb"]  # the bound for one web worker
    print(f"web process peak RSS after every endpoint: {out['rss_mb']:.0f} MB")


@pytest.mark.django_db
def test_numpy_serving_gives_the_recommendations_of_the_torch_model(trained_shop) -> None:
    """In process: the serving loader is the numpy tower, and its query vector equals the
    torch model's for the same stored vectors."""
    version = ModelVersion.objects.get(is_active=True)
    lean, full = load_serving_model(version), load_model(version)
    assert isinstance(lean, HybridServingModel) and isinstance(full, HybridRecommender)
    stored = dict(
        ItemEmbedding.objects.filter(space=space_key("hybrid", version.pk)).values_list(
            "item__external_id", "vector"
        )
    )
    history = np.stack([np.asarray(stored[e], np.float32) for e in ("bag-0", "bag-1")])
    np.testing.assert_allclose(
        lean.user_vector(None, history), full.user_vector(None, history), rtol=1e-5, atol=1e-6
    )


@pytest.mark.django_db
def test_search_answers_503_naming_the_queue_when_no_encode_worker_answers(
    settings, tmp_path, client
) -> None:
    Item.objects.create(external_id="x1", title="Anything")
    with redis_broker(tmp_path) as url, Workers(url) as workers:
        settings.SHOP_RECS = {
            **settings.SHOP_RECS,
            "SEARCH_ENCODER": "worker",
            "SEARCH_ENCODE_TIMEOUT": 1.0,
            "TASK_QUEUES": {"encode": f"{workers.queue}-encode"},
        }
        previous = celery_app.conf.result_backend
        celery_app.conf.result_backend = url
        celery_app._local.__dict__.pop("backend", None)
        try:
            response = client.get("/api/v1/search/?q=boots")
        finally:
            celery_app.conf.result_backend = previous
            celery_app._local.__dict__.pop("backend", None)
    assert response.status_code == 503, response.content
    detail = response.json()["detail"]
    assert "No encode worker answered within 1 s" in detail
    assert f"'{workers.queue}-encode'" in detail and "-Q" in detail
    # without a result backend the setting is refused with what to configure, never a 500
    response = client.get("/api/v1/search/?q=boots")
    assert response.status_code == 503 and "no broker" in response.json()["detail"]


def test_the_query_cache_keeps_the_most_recent_queries(settings, monkeypatch) -> None:
    calls = []

    def encode(text):
        calls.append(text)
        return {"text": np.full(3, len(calls), np.float32)}

    monkeypatch.setattr(search_query, "local_query_vectors", encode)
    settings.SHOP_RECS = {**settings.SHOP_RECS, "SEARCH_ENCODER": "local", "SEARCH_CACHE_SIZE": 2}
    search_query.clear_cache()
    try:
        first = search_query.search_query_vectors("boots")
        assert search_query.search_query_vectors("boots") is first
        search_query.search_query_vectors("bags")
        search_query.search_query_vectors("boots")  # refreshed: "bags" is now the oldest
        search_query.search_query_vectors("shirts")  # drops "bags"
        search_query.search_query_vectors("boots")
        search_query.search_query_vectors("bags")
        assert calls == ["boots", "bags", "shirts", "bags"]
        settings.SHOP_RECS = {**settings.SHOP_RECS, "SEARCH_ENCODER": "nonsense"}
        with pytest.raises(search_query.EncoderUnavailable, match="auto, worker, local"):
            search_query.search_query_vectors("new words")
    finally:
        search_query.clear_cache()
