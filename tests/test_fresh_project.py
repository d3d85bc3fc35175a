"""The README's "Add to an existing Django shop" steps, on a project made by
`django startproject` that has its own `catalog` app, with the plugin installed from a wheel
(not from this checkout): products saved in the shop are mirrored and encoded, `recs_sync`
reconciles, `check` passes, and a product page renders the similar-items widget."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
import zipfile
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from shop_recs.embedded_db import database_url

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

MODELS = """
from django.db import models
from django.urls import reverse


class Category(models.Model):
    name = models.CharField(max_length=100)


class Product(models.Model):
    sku = models.CharField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    category = models.ForeignKey(Category, null=True, on_delete=models.SET_NULL)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=5)
    is_published = models.BooleanField(default=True)

    def get_absolute_url(self):
        return reverse("product", kwargs={"sku": self.sku})

    @property
    def in_stock(self):
        return self.stock > 0
"""

VIEWS = """
from django.views.generic import DetailView

from shop_recs.storefront.tracking import TrackProductViewMixin

from catalog.models import Product


class ProductDetail(TrackProductViewMixin, DetailView):
    model = Product
    slug_field = slug_url_kwarg = "sku"
    template_name = "catalog/product.html"
"""

TEMPLATE = """{% load shop_recs %}<h1>{{ product.name }}</h1>
<section id="similar">{% similar_items product k=3 %}</section>
<section id="recommended">{% recommended_for request k=3 %}</section>
{% shop_recs_scripts %}
"""

SETTINGS = """
# --- shop_recs, as the README says
import os

import dj_database_url

INSTALLED_APPS += [
    "catalog",
    "rest_framework", "rest_framework.authtoken", "django_filters", "drf_spectacular",
    "shop_recs.catalog", "shop_recs.api", "shop_recs.workers",
    "shop_recs.storefront", "shop_recs.dashboard",
]
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
SHOP_RECS = {
    "ITEM_SOURCE": {
        "MODEL": "catalog.Product",
        "FIELDS": {
            "external_id": "sku", "title": "name", "description": "description",
            "category": "category.name", "price": "price",
            "in_stock": "in_stock", "is_active": "is_published",
        },
    },
    "CUSTOMER_ID": "user-{pk}",
    "CELERY_APP": "shop_recs.celery.app",
}
CELERY_TASK_ALWAYS_EAGER = True
MEDIA_ROOT = BASE_DIR / "media"
"""

URLS = """
from django.contrib import admin
from django.urls import include, path

from catalog.views import ProductDetail

urlpatterns = [
    path("admin/", admin.site.urls),
    path("products/<str:sku>/", ProductDetail.as_view(), name="product"),
    path("api/v1/", include("shop_recs.api.urls")),
]
"""

SCENARIO = """
from django.db import transaction
from django.test import Client

from catalog.models import Category, Product
from shop_recs.catalog.models import Interaction, Item

shirts, boots = Category.objects.create(name="Shirts"), Category.objects.create(name="Boots")
for n, (name, cat) in enumerate([
    ("Linen summer shirt", shirts), ("Oxford cotton shirt", shirts), ("Denim work shirt", shirts),
    ("Leather ankle boots", boots), ("Hiking boots", boots), ("Rubber rain boots", boots),
]):
    with transaction.atomic():
        Product.objects.create(sku=f"p{n}", name=name, category=cat, price="10.00")
# the plugin mirrors and encodes outside the shop's request, a moment after the saves
import time

deadline = time.monotonic() + 180
items = Item.objects.order_by("external_id")
while time.monotonic() < deadline and not (
    items.count() == 6 and {i.encoding.status for i in items} == {"done"}
):
    time.sleep(0.5)
print("items", items.count(), sorted({i.encoding.status for i in items}))
page = Client(HTTP_HOST="localhost").get("/products/p0/")  # startproject: DEBUG hosts
html = page.content.decode()
similar = html.split('id="similar"')[1].split("</section>")[0]
print("status", page.status_code)
shown = [s for s in ("p1", "p2", "p3", "p4", "p5") if f"/products/{s}/" in similar]
print("similar", " ".join(shown))
print("views", Interaction.objects.filter(event="view", item__external_id="p0").count())
schema = Client(HTTP_HOST="localhost").get("/api/v1/schema/?format=json").json()
print("schema", sorted(p for p in schema["paths"] if p.startswith("/api/v1/items/"))[0])
"""


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture
def fresh_database(django_db_setup, django_db_blocker):
    name = f"shop_recs_fresh_{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        cfg = dict(connection.settings_dict)
    admin = database_url({**cfg, "NAME": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url({**cfg, "NAME": name})
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_readme_steps_on_a_fresh_startproject(tmp_path, fresh_database) -> None:
    python = sys.executable
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SHOP_RECS_"))}
    # 1. install: a wheel built from this checkout, into a folder of its own
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    # from a copy without build leftovers (setuptools reuses build/, which may hold modules
    # this checkout no longer has)
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".data", "build", "dist", "*.egg-info", "test-artifacts", "__pycache__"
    ))  # fmt: skip
    _run([python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
          str(wheels), str(source)], cwd=tmp_path, env=env)  # fmt: skip
    wheel = next(wheels.glob("shop_recs-*.whl"))
    # what `pip install shop-recs` brings: no embedded database, server or test packages
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in archive.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    base = {r.split(";")[0].split("[")[0].split("<")[0].split(">")[0].strip().lower()
            for r in requires if "extra ==" not in r}  # fmt: skip
    assert not base & {"pgserver", "gunicorn", "whitenoise", "dj-database-url", "pytest"}, base
    assert {"django", "torch", "pgvector", "urllib3"} <= base, base
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "/demo/" in n or n.startswith("tests/")], "demo/tests in wheel"
    assert "shop_recs/storefront/static/shop_recs/widget.js" in names
    _run([python, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
         cwd=tmp_path, env=env)  # fmt: skip
    env = {**env, "PYTHONPATH": str(site), "DATABASE_URL": fresh_database}

    # a shop made the usual way, with its own "catalog" app
    shop = tmp_path / "shop"
    shop.mkdir()
    _run([python, "-m", "django", "startproject", "myshop", "."], cwd=shop, env=env)
    _run([python, "manage.py", "startapp", "catalog"], cwd=shop, env=env)
    (shop / "catalog" / "models.py").write_text(textwrap.dedent(MODELS))
    (shop / "catalog" / "views.py").write_text(textwrap.dedent(VIEWS))
    (shop / "catalog" / "templates" / "catalog").mkdir(parents=True)
    (shop / "catalog" / "templates" / "catalog" / "product.html").write_text(TEMPLATE)
    # 2. settings, 3. urls
    settings_py = shop / "myshop" / "settings.py"
    settings_py.write_text(settings_py.read_text() + textwrap.dedent(SETTINGS))
    (shop / "myshop" / "urls.py").write_text(textwrap.dedent(URLS))

    # the plugin comes from the wheel, not from this checkout
    where = _run([python, "-c", "import shop_recs; print(shop_recs.__file__)"], cwd=shop, env=env)
    assert where.strip().startswith(str(site)), where
    # 4. tables, mirror, check
    _run([python, "manage.py", "makemigrations", "catalog"], cwd=shop, env=env)
    _run([python, "manage.py", "migrate", "--noinput"], cwd=shop, env=env)
    assert "no issues" in _run([python, "manage.py", "check"], cwd=shop, env=env)
    out = _run([python, "manage.py", "shell", "-c", SCENARIO], cwd=shop, env=env)
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines() if " " in line)
    assert lines["items"] == "6 ['done']", out
    assert lines["status"] == "200", out
    # 5. the widget shows the other shirts first (k=3: two shirts and one more)
    assert {"p1", "p2"} <= set(lines["similar"].split()), out
    assert lines["views"] == "1", out
    # the plugin's schema, in a shop that set nothing of REST_FRAMEWORK
    assert lines["schema"] == "/api/v1/items/", out
    summary = _run([python, "manage.py", "recs_sync"], cwd=shop, env=env)
    assert "created 0, updated 0, unchanged 6, deactivated 0, failed 0" in summary, summary
