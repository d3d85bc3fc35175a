"""recs_import: a bundle loads idempotently; bad rows are reported, good rows kept."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from shop_recs.catalog.models import Customer, Interaction, Item, ItemImage
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parent.parent / "demo" / "bundle"


def write_bundle(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(image_bytes((30, 30)))
    (root / "images" / "b.jpg").write_bytes(image_bytes((20, 10), fmt="JPEG"))
    (root / "images" / "broken.jpg").write_bytes(b"nope")
    (root / "items.csv").write_text(
        "item_id,title,description,category,brand,price,image\n"
        "a,Alpha shirt,Soft,Shirts,Nordhavn,19.90,images/a.png\n"
        'b,"Beta bag, large",,Bags,,,images/b.jpg\n'
        "c,Gamma coat,,Coats,,abc,\n"  # bad price
        ",No id,,,,,\n"  # missing id
        "d,Delta,,Dresses,,5,images/missing.png\n"  # item kept, image reported
        "e,Epsilon,,Dresses,,5,images/broken.jpg\n"  # item kept, image reported
        "a,Alpha again,,,,,\n",  # repeated id
        encoding="utf-8",
    )
    (root / "interactions.csv").write_text(
        "user_id,item_id,event,value,timestamp\n"
        "u1,a,view,1,2026-01-01T10:00:00Z\n"
        "u1,a,purchase,1,2026-01-01T10:05:00Z\n"
        "u2,b,rating,4,2026-01-02T10:00:00Z\n"
        "u2,zzz,view,1,2026-01-02T10:01:00Z\n"  # unknown item
        "u3,a,teleport,1,2026-01-02T10:02:00Z\n"  # bad event
        "u3,a,view,1,yesterday\n"  # bad time
        "u3,b,rating,9,2026-01-03T10:00:00Z\n",  # rating out of range
        encoding="utf-8",
    )
    return root


def run_import(path: Path) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("recs_import", str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_reports_bad_rows_and_is_idempotent(tmp_path) -> None:
    bundle = write_bundle(tmp_path / "bundle")
    out, err = run_import(bundle)
    assert "items: 4 created" in out and "bad rows: 9" in out
    assert "items.csv:4: price 'abc' is not a number" in err
    assert "items.csv:5" in err and "items.csv:8: item_id 'a' repeats" in err
    assert "images/missing.png" in err and "images/broken.jpg" in err
    assert "interactions.csv:5" in err and "Unknown item 'zzz'" in err
    assert "unknown event 'teleport'" in err and "not ISO 8601" in err
    assert set(Item.objects.values_list("external_id", flat=True)) == {"a", "b", "d", "e"}
    assert ItemImage.objects.count() == 2
    assert Interaction.objects.count() == 3
    assert Customer.objects.count() == 3
    assert Item.objects.get(external_id="b").title == "Beta bag, large"

    out2, _ = run_import(bundle)
    assert "items: 0 created, 0 updated, 4 unchanged" in out2
    assert "interactions: 0 new, 3 already imported" in out2
    assert "images: 0 added, 2 already there" in out2
    assert Interaction.objects.count() == 3 and ItemImage.objects.count() == 2


def test_changed_rows_update_items(tmp_path) -> None:
    bundle = write_bundle(tmp_path / "bundle")
    run_import(bundle)
    text = (bundle / "items.csv").read_text().replace("Alpha shirt,Soft", "Alpha shirt,Softer")
    (bundle / "items.csv").write_text(text)
    out, _ = run_import(bundle)
    assert "1 updated" in out
    assert Item.objects.get(external_id="a").description == "Softer"


def test_missing_bundle_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CommandError, match=r"items\.csv"):
        call_command("recs_import", str(tmp_path))
    (tmp_path / "items.csv").write_text("id,name\n1,x\n")
    with pytest.raises(CommandError, match="lacks the column"):
        call_command("recs_import", str(tmp_path))


def test_demo_bundle_imports_cleanly() -> None:
    assert (DEMO / "items.csv").is_file(), "the demo bundle ships with the repository"
    out, err = run_import(DEMO)
    assert "bad rows: 0" in out, err
    assert Item.objects.count() >= 300
    assert ItemImage.objects.count() == Item.objects.count()
    assert Interaction.objects.count() > 5000
    events = set(Interaction.objects.values_list("event", flat=True))
    assert {"view", "cart", "purchase"} <= events
