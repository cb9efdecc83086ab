"""The versioned rulebook (SPEC §2): rules as data, validated at start-up."""

from mutualaid.rulebook.loader import DEFAULT_RULEBOOK, RulebookError, load_rulebook, parse_rulebook
from mutualaid.rulebook.models import (
    PLAN_IDS,
    BenefitBand,
    Illness,
    JoinAgeBand,
    JuryRules,
    OperatorFundedWindow,
    PlanRules,
    Rulebook,
    RuleLookupError,
    RuleVersion,
)

__all__ = [
    "DEFAULT_RULEBOOK",
    "PLAN_IDS",
    "BenefitBand",
    "Illness",
    "JoinAgeBand",
    "JuryRules",
    "OperatorFundedWindow",
    "PlanRules",
    "RuleLookupError",
    "RuleVersion",
    "Rulebook",
    "RulebookError",
    "load_rulebook",
    "parse_rulebook",
]
