"""The Python packages moved under ``shop_recs.`` (so a shop's own ``catalog`` or ``api`` package
never shadows them): model versions recorded before name their class by the old dotted path."""

from django.db import migrations
from django.db.models import Value
from django.db.models.functions import Concat, Substr


def forwards(apps, schema_editor):
    ModelVersion = apps.get_model("shop_recs_catalog", "ModelVersion")
    ModelVersion.objects.filter(kind__startswith="recsys.").update(
        kind=Concat(Value("shop_recs."), "kind")
    )


def backwards(apps, schema_editor):
    ModelVersion = apps.get_model("shop_recs_catalog", "ModelVersion")
    ModelVersion.objects.filter(kind__startswith="shop_recs.recsys.").update(
        kind=Substr("kind", len("shop_recs.") + 1)
    )


class Migration(migrations.Migration):
    dependencies = [("shop_recs_catalog", "0005_merchandising_jobs")]

    operations = [migrations.RunPython(forwards, backwards)]
