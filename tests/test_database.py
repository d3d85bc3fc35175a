"""The real database: PostgreSQL with pgvector, migrations complete, embedded server behaviour."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_postgres_with_pgvector() -> None:
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
        assert tuple(int(p) for p in version.split(".")[:2]) >= (0, 5)
        cursor.execute("SELECT '[1,0,0]'::vector <=> '[0,1,0]'::vector")
        assert cursor.fetchone()[0] == pytest.approx(1.0)


@pytest.mark.django_db(databases="__all__")  # makemigrations checks every alias (the replica)
def test_no_missing_migrations() -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


START = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from shop_recs.embedded_db import embedded_database
    cfg = embedded_database(Path(sys.argv[1]))
    import psycopg
    kw = dict(host=cfg["HOST"], port=cfg["PORT"], user="postgres", dbname="postgres")
    with psycopg.connect(**kw) as c:
        c.execute("SELECT pg_advisory_xact_lock(42)")  # CREATE IF NOT EXISTS races otherwise
        c.execute("CREATE TABLE IF NOT EXISTS t (x int)")
        c.execute("INSERT INTO t VALUES (1)")
        n = c.execute("SELECT count(*) FROM t").fetchone()[0]
    print(json.dumps({"host": cfg["HOST"], "port": cfg["PORT"], "rows": n}))
    """
)


def _start(data_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", START, str(data_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_embedded_server_is_shared_and_survives_restarts(tmp_path) -> None:
    data_dir = tmp_path / "data"
    try:
        procs = [_start(data_dir), _start(data_dir)]  # two processes at once, one server
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        assert results[0]["host"] == results[1]["host"]
        assert sorted(r["rows"] for r in results) == [1, 2]
        # the server keeps running after its starters exit, and keeps its data
        later = _start(data_dir)
        out, err = later.communicate(timeout=120)
        assert later.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["rows"] == 3
    finally:
        pgdata = data_dir / "pgdata"
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys, pgserver; pgserver.get_server(sys.argv[1], cleanup_mode='delete')",
                    str(pgdata),
                ],
                cwd=ROOT,
                check=False,
                capture_output=True,
                timeout=60,
            )
