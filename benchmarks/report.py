"""Writes one section of docs/benchmarks.md, leaving the others as they are, so each
benchmark target can be run on its own."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "docs" / "benchmarks.md"
HEADER = ("# Benchmarks\n\nWritten by `make bench`, `make bench-membership` and "
          "`make bench-jury`; each section names the machine and the time it was measured. "
          "Speed targets live here, never in timed tests.\n")


def say(text: str) -> None:
    """A progress line, timestamped, flushed at once (benchmarks run for minutes)."""
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")


def write_section(key: str, title: str, rows: list[tuple[str, str]], notes: str = "") -> Path:
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    body = "\n".join([
        start, f"## {title}", "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on: {machine()}.", "",
        "| what | figure |", "| --- | --- |", *[f"| {a} | {b} |" for a, b in rows], "",
        *([notes, ""] if notes else []), end])
    text = REPORT.read_text() if REPORT.exists() else HEADER
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + body + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(text)
    return REPORT


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux), to tell the process's own cost from
    the time it waited for a core on a shared machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profiled_service(service: str) -> str:
    """``python -c`` source that runs a service under cProfile: SIGUSR1 writes the statistics
    to the path in ``sys.argv[1]``, because a process stopped by SIGTERM never reaches
    cProfile's own exit hook."""
    return f"""
import cProfile, signal, sys
profiler = cProfile.Profile()
def dump(*_):
    profiler.disable()
    profiler.dump_stats(sys.argv[1])
signal.signal(signal.SIGUSR1, dump)
profiler.enable()
from {service}.__main__ import main
main()
"""
