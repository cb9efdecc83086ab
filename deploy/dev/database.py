"""Postgres for development and CI: pick a server and make sure database `mutualaid` exists.

Usage: .venv/bin/python deploy/dev/database.py ensure [--probe-port PORT]
       .venv/bin/python deploy/dev/database.py stop      # stops the embedded server, if any
`ensure` prints exactly one stdout line, `DATABASE_URL=<url>`, e.g. for
`export "$(.venv/bin/python deploy/dev/database.py ensure)"`. Order: $DATABASE_URL, then
a server on 127.0.0.1:PORT (default $PG_PROBE_PORT or 5432), then embedded pgserver in .run/pgdata.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # makes `devstack` importable

from devstack.database import ensure_database_url, stop_embedded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["ensure", "stop"])
    parser.add_argument(
        "--probe-port",
        type=int,
        default=None,
        help="port of the local server to try (default $PG_PROBE_PORT or 5432)",
    )
    args = parser.parse_args(argv)

    if args.action == "stop":
        print(
            "stopped embedded Postgres" if stop_embedded() else "embedded Postgres not running",
            file=sys.stderr,
        )
        return 0
    print(f"DATABASE_URL={ensure_database_url(args.probe_port)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
