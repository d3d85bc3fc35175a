"""The package's architecture holds: import-linter's contracts (pyproject.toml) are kept, and
they do catch a deliberate upward import (a lower layer importing a higher one) and Django in
the core. ``make test`` also runs ``lint-imports`` itself."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its import contracts, to break on purpose."""
    shutil.copytree(ROOT / "shop_recs", tmp_path / "shop_recs", ignore=shutil.ignore_patterns(
        "__pycache__", "static", "templates"
    ))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_import_contracts_are_kept() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_an_upward_import_breaks_the_layers(tree: Path) -> None:
    # the catalog (data) must never know the API above it
    models = tree / "shop_recs" / "catalog" / "selectors.py"
    models.write_text(models.read_text() + "\nfrom shop_recs.api import views  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "shop_recs.catalog.selectors -> shop_recs.api" in result.stdout
    assert "Layers" in result.stdout and "BROKEN" in result.stdout


def test_django_in_the_core_breaks_its_contract(tree: Path) -> None:
    base = tree / "shop_recs" / "recsys" / "idmap.py"
    base.write_text(base.read_text() + "\nimport django  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "shop_recs.recsys is not allowed to import django" in result.stdout


def test_idmap_round_trip(tmp_path) -> None:
    from shop_recs.recsys.idmap import IdMap

    ids = IdMap(["b", "a", "b", "c"])
    assert ids.to_list() == ["b", "a", "c"] and ids.index("c") == 2
    ids.save(tmp_path / "ids.json")
    again = IdMap.load(tmp_path / "ids.json")
    assert again.to_list() == ids.to_list() and again.ids([2, 0]) == ["c", "b"]


def test_a_shop_missing_a_plugin_app_is_warned(settings) -> None:
    from django.test import override_settings

    from shop_recs.catalog.checks import check_plugin_apps

    assert check_plugin_apps() == []
    kept = [a for a in settings.INSTALLED_APPS if "storefront" not in a]
    with override_settings(INSTALLED_APPS=kept):
        warnings = check_plugin_apps()
    assert [w.id for w in warnings] == ["shop_recs.W001"]
    assert "shop_recs.storefront" in warnings[0].msg and "{% load shop_recs %}" in warnings[0].msg
