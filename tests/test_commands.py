from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_create_admin_prints_credentials_and_remembers_them(tmp_path) -> None:
    creds = tmp_path / "admin.txt"
    out = io.StringIO()
    call_command("recs_create_admin", "--credentials-file", str(creds), stdout=out)
    text = out.getvalue()
    password = creds.read_text().strip()
    assert f"Password:    {password}" in text and "API token:" in text
    user = authenticate(username="admin", password=password)
    assert user is not None and user.is_staff and user.is_superuser

    again = io.StringIO()
    call_command("recs_create_admin", "--credentials-file", str(creds), stdout=again)
    assert f"Password:    {password}" in again.getvalue()
    assert get_user_model().objects.count() == 1


def test_docker_compose_file_is_valid() -> None:
    compose = ROOT / "docker-compose.yml"
    spec = yaml.safe_load(compose.read_text())
    assert {"web", "worker", "beat", "db", "redis"} <= set(spec["services"])
    assert spec["services"]["db"]["image"].startswith("pgvector/pgvector")
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        probe = subprocess.run([*cmd, "version"], capture_output=True, text=True)
        if probe.returncode != 0:
            continue  # a docker client without the compose plugin
        result = subprocess.run([*cmd, "config", "-q"], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_readme_documents_every_setting() -> None:
    """The README's SHOP_RECS table lists every key of the plugin's settings."""
    from pathlib import Path

    from shop_recs.conf import DEFAULTS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [key for key in DEFAULTS if f"| `{key}` |" not in readme]
    assert not missing, f"README's settings table lacks {missing}"
