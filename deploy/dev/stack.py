"""The local platform: broker, database and the five services.

  run   fresh broker and demo database, all services, a demo month, its sharing notice;
        then keeps running until Ctrl-C, which stops everything
  up    the same platform in the background (database ``mutualaid``); returns when ready
  down  stops what ``up`` started
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # makes `devstack` importable

from devstack import RUN_DIR  # noqa: E402
from devstack.broker import DEFAULT_PORT, start_broker, stop_broker  # noqa: E402
from devstack.database import ensure_database_url, fresh_database  # noqa: E402
from devstack.platform import Platform, start_platform, stop_pids  # noqa: E402
from devstack.scenario import MonthConfig, notice_table, now, run_month  # noqa: E402

from mutualaid.client import PlatformClient  # noqa: E402

STATE = RUN_DIR / "platform.json"


def say(text: str) -> None:
    print(f"[{now()}] {text}", flush=True)


def _start(database_url: str) -> tuple[Platform, object]:
    port = int(os.environ.get("KAFKA_PORT", DEFAULT_PORT))
    broker = start_broker(port)
    platform = start_platform(bootstrap=broker.bootstrap, database_url=database_url)
    # Bare lines, so tools driving the platform can parse them.
    print(f"bootstrap: {broker.bootstrap}")
    print(f"database: {database_url}")
    for service, p in platform.ports.items():
        print(f"{service} metrics: http://127.0.0.1:{p}/metrics  (health /health, "
              f"log {platform.logs[service].relative_to(RUN_DIR.parent)})")
    sys.stdout.flush()
    return platform, broker


def run(members: int, claims: int) -> int:
    # A demo month is dated 2020; a fresh broker and database keep reruns independent.
    stop_broker(int(os.environ.get("KAFKA_PORT", DEFAULT_PORT)))
    say("starting broker, database and services")
    platform, broker = _start(fresh_database("mutualaid_demo"))
    try:
        cfg = MonthConfig(members=members, claims=claims, tag=f"d{int(time.time())}")

        async def month() -> str:
            async with PlatformClient(platform.bootstrap, source="mutualaid/demo") as client:
                result = await run_month(client, cfg, platform.ports, say)
                say(f"{result.joined} members joined ({result.join_rejections} refused), "
                    f"{len(result.approved_cases)} cases approved")
                return notice_table(result)

        print("\nSHARING NOTICE\n" + asyncio.run(month()) + "\n", flush=True)
        say("platform running; Ctrl-C stops it")
        stop = {"now": False}
        signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        while not stop["now"] and all(p.poll() is None for p in platform.processes.values()):
            time.sleep(0.5)
    finally:
        say("stopping services and broker")
        platform.stop()
        broker.stop()  # type: ignore[attr-defined]
    return 0


def up() -> int:
    platform, _broker = _start(ensure_database_url())
    RUN_DIR.mkdir(exist_ok=True)
    STATE.write_text(json.dumps({"pids": [p.pid for p in platform.processes.values()],
                                 "bootstrap": platform.bootstrap, "ports": platform.ports}))
    return 0


def down() -> int:
    if STATE.exists():
        stop_pids(json.loads(STATE.read_text())["pids"])
        STATE.unlink()
        say("services stopped")
    stopped = stop_broker(int(os.environ.get("KAFKA_PORT", DEFAULT_PORT)))
    say("broker stopped" if stopped else "no broker of ours was running")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "up", "down"])
    parser.add_argument("--members", type=int, default=3000)
    parser.add_argument("--claims", type=int, default=6)
    args = parser.parse_args()
    if args.action == "run":
        return run(args.members, args.claims)
    return up() if args.action == "up" else down()


if __name__ == "__main__":
    raise SystemExit(main())
