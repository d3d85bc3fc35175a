"""Model vectors per version: the ``hybrid`` rows become ``hybrid@<active version id>`` with
an index of their own, so the next activation can build its vectors beside them (see
``shop_recs.catalog.vectors.space_key``)."""

from django.db import migrations

TABLE = "shop_recs_catalog_itemembedding"


def _hybrid_indexes(cursor, versioned: bool) -> list[str]:
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname LIKE %s",
        [TABLE, "recs_emb_hybrid_%_hnsw"],
    )
    return [n for (n,) in cursor.fetchall() if n.startswith("recs_emb_hybrid_v") == versioned]


def forward(apps, schema_editor):
    ModelVersion = apps.get_model("shop_recs_catalog", "ModelVersion")
    active = ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True).first()
    with schema_editor.connection.cursor() as cursor:
        for name in _hybrid_indexes(cursor, versioned=False):
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
        if active is None:
            cursor.execute(f"DELETE FROM {TABLE} WHERE space = 'hybrid'")
            return
        key = f"hybrid@{int(active)}"
        cursor.execute(f"UPDATE {TABLE} SET space = %s WHERE space = 'hybrid'", [key])
        cursor.execute(f"SELECT DISTINCT dim FROM {TABLE} WHERE space = %s", [key])
        for (dim,) in cursor.fetchall():
            if int(dim) <= 2000:
                cursor.execute(
                    f"CREATE INDEX IF NOT EXISTS recs_emb_hybrid_v{int(active)}_{int(dim)}_hnsw "
                    f"ON {TABLE} USING hnsw ((vector::vector({int(dim)})) vector_ip_ops) "
                    f"WHERE space = '{key}' AND dim = {int(dim)}"
                )


def backward(apps, schema_editor):
    ModelVersion = apps.get_model("shop_recs_catalog", "ModelVersion")
    active = ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True).first()
    with schema_editor.connection.cursor() as cursor:
        for name in _hybrid_indexes(cursor, versioned=True):
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
        keep = f"hybrid@{int(active)}" if active is not None else ""
        cursor.execute(f"DELETE FROM {TABLE} WHERE space LIKE 'hybrid@%%' AND space <> %s", [keep])
        cursor.execute(f"UPDATE {TABLE} SET space = 'hybrid' WHERE space = %s", [keep])


class Migration(migrations.Migration):
    dependencies = [("shop_recs_catalog", "0010_model_selection")]

    operations = [migrations.RunPython(forward, backward)]
