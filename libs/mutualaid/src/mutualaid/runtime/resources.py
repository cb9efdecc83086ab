"""What every handler may read besides the transaction: built once when the app is built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mutualaid.rulebook import Rulebook, load_rulebook

from .settings import ServiceSettings


@dataclass(frozen=True)
class Resources:
    rulebook: Rulebook
    settings: Any  # the service's own ServiceSettings subclass


def standard_resources(settings: ServiceSettings) -> Resources:
    """Loads and validates the rulebook: a bad file stops the service here."""
    return Resources(load_rulebook(settings.rulebook_path), settings)
