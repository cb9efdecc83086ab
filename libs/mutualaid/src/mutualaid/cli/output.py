"""What the CLI prints: tables, money, JSON for scripts, the progress bar, and the errors
an operator should expect (printed as one clear line, never a traceback)."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, TextIO

import orjson

#: Exit statuses (documented in ``mutualaid --help``).
OK = 0
#: The platform said no: a rejected command, a failed run, books that do not balance,
#: nothing found.
REFUSED = 1
#: Bad usage or bad data (argparse uses 2 as well).
USAGE = 2
#: The broker or the database cannot be reached.
UNAVAILABLE = 3
#: No answer within ``--wait``.
TIMED_OUT = 4


class CliError(Exception):
    """An expected failure: its message is printed as is, its code is the exit status."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code


def yuan(fen: int | None) -> str:
    """Fen as CNY with two decimals and thousands separators: ``1,234.05``."""
    if fen is None:
        return "-"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
          left: int = 1) -> str:
    """A plain-text table: the first ``left`` columns aligned left, the others right (the
    numbers), a rule under the headers."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r]
                                           for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(value: Any, *, indent: bool = True) -> str:
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(value, default=_default, option=option | orjson.OPT_NON_STR_KEYS
                        ).decode()


def emit_json(value: Any, *, indent: bool = True, out: TextIO | None = None) -> None:
    print(to_json(value, indent=indent), file=out or sys.stdout, flush=True)


def compact(value: Any, limit: int = 160) -> str:
    """Short one-line JSON of a value, cut with an ellipsis at ``limit`` characters."""
    text = to_json(value, indent=False)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def terminal_width(default: int = 120) -> int:
    return shutil.get_terminal_size((default, 24)).columns


class Progress:
    """A progress bar on stderr. On a terminal it redraws in place; otherwise (a log, a
    pipe) it prints a line when the count changes, at most once a second."""

    def __init__(self, what: str, *, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last: tuple[int, int] | None = None
        self._printed_at = 0.0

    def update(self, done: int, total: int, note: str = "", *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        changed = (done, total) != self._last
        if not changed and not self.tty and self._last is not None:
            return  # a log gets each count once
        if not force:
            if self.tty and not changed and now - self._printed_at < 0.5:
                return  # on a terminal the clock ticks twice a second
            if not self.tty and (not changed or (now - self._printed_at < 1.0
                                                 and done < total)):
                return
        self._last, self._printed_at = (done, total), now
        text = render_bar(done, total, self.what, now - self.started, note)
        if self.tty:
            self.stream.write("\r" + text[:terminal_width() - 1] + "\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self._last is not None:
            self.stream.write("\n")
            self.stream.flush()


def render_bar(done: int, total: int, what: str, seconds: float, note: str = "",
               width: int = 30) -> str:
    filled = width if total <= 0 else min(width, width * done // total)
    bar = "#" * filled + "-" * (width - filled)
    pct = 100 if total <= 0 else min(100, 100 * done // total)
    minutes, secs = divmod(int(seconds), 60)
    tail = f"  {note}" if note else ""
    return f"[{bar}] {pct:3d}%  {done}/{total} {what}  {minutes:02d}:{secs:02d}{tail}"


def kv(detail: Mapping[str, Any], *, skip: Sequence[str] = (), limit: int = 60) -> str:
    """``key=value`` pairs of a mapping, each value short: for one-line summaries."""
    parts = []
    for key, value in detail.items():
        if key in skip or value is None or value == [] or value == ():
            continue
        text = value if isinstance(value, str) else compact(value, limit)
        if isinstance(text, str) and len(text) > limit:
            text = text[:limit - 1] + "…"
        parts.append(f"{key}={text}")
    return " ".join(parts)
