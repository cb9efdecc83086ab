"""Read and validate a rulebook file at start-up.

A service must not run on rules it cannot trust, so every problem becomes one
``RulebookError`` naming the file and listing each problem as ``location: message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mutualaid.rulebook.models import Rulebook

DEFAULT_RULEBOOK = "rulebook.yaml"


class RulebookError(Exception):
    """The rulebook is missing, unreadable or invalid; the message says where and why."""


def load_rulebook(path: str | Path | None = None) -> Rulebook:
    """Load and validate a rulebook; ``None`` loads the default shipped with this package."""
    if path is None:
        source = resources.files(__package__).joinpath(DEFAULT_RULEBOOK)
        name = f"packaged {__package__}/{DEFAULT_RULEBOOK}"
    else:
        source, name = Path(path), str(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulebookError(f"rulebook {name}: cannot read: {exc.strerror or exc}") from exc
    return parse_rulebook(text, name)


def parse_rulebook(text: str, name: str = "draft") -> Rulebook:
    """Validate a rulebook given as YAML text (e.g. a draft sent with a dry run)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulebookError(f"rulebook {name}: not valid YAML: {exc}") from exc
    except RecursionError:  # "{" * 500 in a dry run's draft (found by the hostile-input fuzz)
        raise RulebookError(f"rulebook {name}: nested too deeply") from None
    try:
        return Rulebook.model_validate(_merge_defaults(raw))
    except ValidationError as exc:
        problems = "\n".join(f"  {_location(e['loc'], raw)}: {_message(e)}" for e in exc.errors())
        raise RulebookError(
            f"rulebook {name}: {exc.error_count()} problem(s):\n{problems}"
        ) from exc


def _merge_defaults(raw: Any) -> Any:
    """Copy each version's ``defaults`` into its plans (a plan's own key wins, whole).

    Anything not shaped as expected is passed through untouched for pydantic to report.
    New dicts throughout: YAML aliases share one object between versions.
    """
    if not isinstance(raw, Mapping) or not isinstance(raw.get("versions"), list):
        return raw
    versions = []
    for version in raw["versions"]:
        if isinstance(version, Mapping) and isinstance(version.get("defaults") or {}, Mapping):
            version = dict(version)
            defaults = version.pop("defaults", None) or {}
            plans = version.get("plans")
            if isinstance(plans, Mapping):
                version["plans"] = {
                    plan_id: _with_defaults(defaults, block) for plan_id, block in plans.items()
                }
        versions.append(version)
    return {**raw, "versions": versions}


def _with_defaults(defaults: Mapping[str, Any], block: Any) -> Any:
    # An empty plan block (`critical_illness:`) means "all defaults".
    if block is None:
        return dict(defaults)
    return {**defaults, **block} if isinstance(block, Mapping) else block


def _location(loc: tuple[int | str, ...], raw: Any) -> str:
    """``versions.1.plans.x`` with the version id added, so a human finds the right block."""
    parts = [str(part) for part in loc]
    if len(loc) >= 2 and loc[0] == "versions" and isinstance(loc[1], int):
        try:
            version_id = raw["versions"][loc[1]]["version"]
            parts[1] = f"{loc[1]} ({version_id!r})"
        except (KeyError, IndexError, TypeError):
            pass
    return ".".join(parts) or "(top level)"


def _message(error: Mapping[str, Any]) -> str:
    # Our own validators raise ValueError; pydantic prefixes those with "Value error, ".
    return str(error["msg"]).removeprefix("Value error, ")
