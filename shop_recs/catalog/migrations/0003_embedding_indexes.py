"""HNSW indexes for the bundled encoders' dimensions (others are created on first write)."""

from django.db import migrations

DEFAULTS = [("text", 384), ("image", 1280), ("content", 1664)]
TABLE = "shop_recs_catalog_itemembedding"


def sql(space: str, dim: int) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS recs_emb_{space}_{dim}_hnsw ON {TABLE} "
        f"USING hnsw ((vector::vector({dim})) vector_cosine_ops) "
        f"WHERE space = '{space}' AND dim = {dim}"
    )


class Migration(migrations.Migration):
    dependencies = [("shop_recs_catalog", "0002_embeddings")]

    operations = [
        migrations.RunSQL(
            sql(space, dim), reverse_sql=f"DROP INDEX IF EXISTS recs_emb_{space}_{dim}_hnsw"
        )
        for space, dim in DEFAULTS
    ]
