"""What publicity's handlers may read besides the transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mutualaid.rulebook import Rulebook, load_rulebook

from .metrics import PublicityMetrics
from .settings import PublicitySettings


@dataclass(frozen=True)
class PublicityResources:
    rulebook: Rulebook
    settings: PublicitySettings
    metrics: PublicityMetrics


def resources_factory(metrics: PublicityMetrics
                      ) -> Callable[[PublicitySettings], PublicityResources]:
    def build(settings: PublicitySettings) -> PublicityResources:
        # loads and validates the rulebook: a bad file stops the service here
        return PublicityResources(load_rulebook(settings.rulebook_path), settings, metrics)
    return build
