"""recsys is the pure core: it must import with Django (and DRF, Celery) unavailable."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys, pkgutil, importlib

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"django", "rest_framework", "celery", "drf_spectacular"}:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    import shop_recs.recsys as recsys
    for mod in pkgutil.walk_packages(recsys.__path__, "shop_recs.recsys."):
        importlib.import_module(mod.name)
    leaked = [m for m in sys.modules if m.split(".")[0] in {"django", "rest_framework", "celery"}]
    assert not leaked, leaked
    print("ok", len(list(pkgutil.walk_packages(recsys.__path__))))
    """
)


def test_recsys_imports_without_django() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_idmap_round_trip(tmp_path) -> None:
    from shop_recs.recsys.idmap import IdMap

    ids = IdMap(["b", "a", "b", "c"])
    assert ids.to_list() == ["b", "a", "c"] and ids.index("c") == 2
    ids.save(tmp_path / "ids.json")
    again = IdMap.load(tmp_path / "ids.json")
    assert again.to_list() == ids.to_list() and again.ids([2, 0]) == ["c", "b"]
