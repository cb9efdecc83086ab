"""The rulebook (SPEC §2) as frozen, validated models.

Money is integer fen and rates are integer basis points, so nothing here ever needs a float.
The models check that a rulebook is internally consistent; whether a member or a case
satisfies the rules is the business of the services that use them.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Collection, Mapping
from datetime import date
from types import MappingProxyType
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WrapSerializer,
    field_validator,
    model_validator,
)

#: The plans every rule version must define (SPEC §2); an unknown key is a typo, not a plan.
PLAN_IDS: tuple[str, ...] = ("critical_illness", "elderly_cancer", "chronic_cancer")

# strict: YAML happily yields floats and booleans where a count or an amount belongs.
Count = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[int, Field(strict=True, ge=1)]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
DayOfMonth = Annotated[int, Field(strict=True, ge=1, le=28)]  # <= 28: exists in every month

_C = TypeVar("_C", bound=Collection[object])
_V = TypeVar("_V")


def _non_empty(value: _C) -> _C:
    # Not Field(min_length=1): pydantic also reports that when an item fails validation,
    # which would add a misleading "0 items" line to a start-up error.
    if not value:
        raise ValueError("must not be empty")
    return value


# A read-only mapping that still dumps as a plain dict: a frozen model should not hand out
# a dict its callers could mutate under every other user of the shared rulebook.
ReadOnlyMap = Annotated[
    Mapping[Code, _V],
    AfterValidator(MappingProxyType),
    WrapSerializer(lambda value, nxt: nxt(dict(value))),
]


class RuleLookupError(KeyError):
    """No rule for the requested plan, version id or date.

    A ``KeyError`` (hence a ``LookupError``) whose ``str`` is the plain message.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Illness(_Frozen):
    name: str = Field(min_length=1)
    malignant: bool


class BenefitBand(_Frozen):
    """Benefit for an age at first diagnosis, both ends inclusive, in whole years."""

    min_age_years: Count
    max_age_years: Count
    benefit_fen: Positive

    @model_validator(mode="after")
    def _ordered(self) -> BenefitBand:
        if self.max_age_years < self.min_age_years:
            raise ValueError(f"band {self.min_age_years}-{self.max_age_years}: max below min")
        return self


class JoinAgeBand(_Frozen):
    """Allowed age at joining: at least ``min_years`` years plus ``min_days`` days, and at
    most ``max_years`` (inclusive, i.e. until the day before the next birthday).

    Days exist because the youngest members are 30 days old, which no whole-year bound says.
    """

    min_years: Count = 0
    min_days: Annotated[int, Field(strict=True, ge=0, le=365)] = 0
    max_years: Annotated[int, Field(strict=True, ge=0, le=120)]

    @model_validator(mode="after")
    def _sane(self) -> JoinAgeBand:
        if self.max_years < self.min_years:
            raise ValueError(f"join age max {self.max_years} years is below min {self.min_years}")
        return self


class OperatorFundedWindow(_Frozen):
    """Members who joined before ``joined_before`` pay nothing for sharing dates before
    ``periods_before``; the operator pays their share instead."""

    joined_before: date
    periods_before: date


class JuryRules(_Frozen):
    #: How a case disputed at publicity is judged.
    mode: Literal["open", "panel"]
    #: How an appeal against a rejection at review is judged: a drawn panel by default, a
    #: small accountable body for a claimant's own case (SPEC §6 leaves it to the rulebook).
    appeal_mode: Literal["open", "panel"] = "panel"
    #: ``open`` mode: a verdict needs at least this many votes.
    min_votes: Positive
    #: ``panel`` mode: odd, so a full panel cannot tie.
    panel_size: Positive
    quorum_numerator: Positive
    quorum_denominator: Positive
    #: The verdict needs strictly more than this percentage of the votes cast.
    approval_majority_pct: Annotated[int, Field(strict=True, ge=0, le=99)]
    vote_window_hours: Positive

    @model_validator(mode="after")
    def _consistent(self) -> JuryRules:
        if self.panel_size % 2 == 0:
            raise ValueError(f"jury panel_size must be odd, got {self.panel_size}")
        if self.quorum_numerator > self.quorum_denominator:
            raise ValueError(
                f"jury quorum {self.quorum_numerator}/{self.quorum_denominator} exceeds 1"
            )
        return self

    def quorum_met(self, votes_cast: int, panel_size: int) -> bool:
        """Whether ``votes_cast`` of a panel of ``panel_size`` reach the quorum (integer maths)."""
        return votes_cast * self.quorum_denominator >= self.quorum_numerator * panel_size

    def approves(self, votes_for: int, votes_cast: int) -> bool:
        """Whether ``votes_for`` is strictly more than the majority share of ``votes_cast``."""
        return votes_cast > 0 and votes_for * 100 > votes_cast * self.approval_majority_pct


def _strictly_increasing(days: tuple[int, ...]) -> tuple[int, ...]:
    if not days or any(a >= b for a, b in itertools.pairwise(days)):
        raise ValueError(f"days of month must be non-empty and strictly increasing, got {days}")
    return days


MonthDays = Annotated[tuple[DayOfMonth, ...], AfterValidator(_strictly_increasing)]


class PlanRules(_Frozen):
    """The parameters of one plan under one rule version."""

    plan_id: Code
    join_age: JoinAgeBand
    health_declaration_required: bool
    chronic_condition_required: bool
    chronic_condition_groups: tuple[Code, ...]
    covered_illnesses: Annotated[ReadOnlyMap[Illness], AfterValidator(_non_empty)]
    benefit_bands: Annotated[tuple[BenefitBand, ...], AfterValidator(_non_empty)]
    management_fee_bps: Annotated[int, Field(strict=True, ge=0, le=10_000)]
    waiting_period_days: Count
    pre_existing_lookback_days: Count
    annual_cap_fen: Positive | None
    per_case_cap_fen: Positive | None
    operator_funded_windows: tuple[OperatorFundedWindow, ...]
    publicity_days: MonthDays
    objection_window_days: Positive
    sharing_days: MonthDays
    jury: JuryRules
    arrears_limit_periods: Positive
    dissolution_threshold_members: Count

    @model_validator(mode="after")
    def _consistent(self) -> PlanRules:
        if len(set(self.chronic_condition_groups)) != len(self.chronic_condition_groups):
            raise ValueError("chronic_condition_groups has duplicates")
        if self.chronic_condition_required and not self.chronic_condition_groups:
            raise ValueError("chronic_condition_required but no chronic_condition_groups")
        bands = self.benefit_bands
        for lower, upper in itertools.pairwise(bands):
            if upper.min_age_years <= lower.max_age_years:
                raise ValueError(
                    f"benefit bands overlap or are out of order: "
                    f"{lower.min_age_years}-{lower.max_age_years} then "
                    f"{upper.min_age_years}-{upper.max_age_years}"
                )
        # Every sharing day needs an earlier publicity day that month to fix its roll.
        if self.sharing_days[0] <= self.publicity_days[0]:
            raise ValueError(
                f"sharing day {self.sharing_days[0]} has no publicity day before it in the month"
            )
        return self

    def benefit_fen(self, age_years: int) -> int | None:
        """Benefit for a first diagnosis at ``age_years``; ``None`` when no band covers it."""
        for band in self.benefit_bands:
            if band.min_age_years <= age_years <= band.max_age_years:
                return band.benefit_fen
        return None

    def management_fee_fen(self, benefits_fen: int) -> int:
        """The fee on ``benefits_fen``, rounded half up to the fen, in integer arithmetic."""
        if benefits_fen < 0:
            raise ValueError(f"benefits_fen must not be negative, got {benefits_fen}")
        return (benefits_fen * self.management_fee_bps + 5_000) // 10_000

    def covers(self, illness_code: str) -> bool:
        return illness_code in self.covered_illnesses

    def is_malignant(self, illness_code: str) -> bool:
        """Whether a covered illness is malignant; ``False`` for codes the plan does not cover."""
        illness = self.covered_illnesses.get(illness_code)
        return illness is not None and illness.malignant

    def operator_pays(self, joined_on: date, sharing_date: date) -> bool:
        return any(
            joined_on < w.joined_before and sharing_date < w.periods_before
            for w in self.operator_funded_windows
        )

    def roll_date(self, sharing_date: date) -> date:
        """The publicity day that fixes the sharing roll for ``sharing_date``: the latest
        publicity day of the same month strictly before it."""
        if sharing_date.day not in self.sharing_days:
            raise ValueError(
                f"{sharing_date} is not a sharing day of {self.plan_id} "
                f"(sharing days: {list(self.sharing_days)})"
            )
        day = max(d for d in self.publicity_days if d < sharing_date.day)
        return sharing_date.replace(day=day)


class RuleVersion(_Frozen):
    version: str = Field(min_length=1)
    effective_from: date
    plans: ReadOnlyMap[PlanRules]

    @field_validator("plans", mode="before")
    @classmethod
    def _name_plans(cls, plans: object) -> object:
        # A plan block is keyed by its id; copy the key in so a PlanRules knows its plan.
        if isinstance(plans, Mapping):
            return {
                key: {"plan_id": key, **value} if isinstance(value, Mapping) else value
                for key, value in plans.items()
            }
        return plans

    @model_validator(mode="after")
    def _all_plans(self) -> RuleVersion:
        missing = [p for p in PLAN_IDS if p not in self.plans]
        unknown = [p for p in self.plans if p not in PLAN_IDS]
        problems = []
        if missing:
            problems.append(f"missing plan(s) {missing}")
        if unknown:
            problems.append(f"unknown plan(s) {unknown} (known: {list(PLAN_IDS)})")
        problems += [
            f"plan {key!r} has plan_id {rules.plan_id!r}"
            for key, rules in self.plans.items()
            if rules.plan_id != key
        ]
        if problems:
            raise ValueError(f"version {self.version!r}: " + "; ".join(problems))
        return self

    def plan(self, plan_id: str) -> PlanRules:
        try:
            return self.plans[plan_id]
        except KeyError:
            raise RuleLookupError(
                f"unknown plan {plan_id!r} in rule version {self.version!r} "
                f"(known: {sorted(self.plans)})"
            ) from None


class Rulebook(_Frozen):
    versions: Annotated[tuple[RuleVersion, ...], AfterValidator(_non_empty)]

    @model_validator(mode="after")
    def _ordered(self) -> Rulebook:
        ids = [v.version for v in self.versions]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate version id(s) {duplicates}")
        for earlier, later in itertools.pairwise(self.versions):
            if later.effective_from <= earlier.effective_from:
                raise ValueError(
                    "effective_from dates must be strictly increasing: "
                    f"{earlier.version!r} ({earlier.effective_from}) is followed by "
                    f"{later.version!r} ({later.effective_from})"
                )
        return self

    def version_on(self, day: date) -> RuleVersion:
        """The version in force on ``day``: the latest one with ``effective_from <= day``."""
        starts = [v.effective_from for v in self.versions]
        index = bisect.bisect_right(starts, day) - 1
        if index < 0:
            raise RuleLookupError(
                f"no rule version in force on {day}: the first, "
                f"{self.versions[0].version!r}, takes effect on {starts[0]}"
            )
        return self.versions[index]

    def version(self, version_id: str) -> RuleVersion:
        for candidate in self.versions:
            if candidate.version == version_id:
                return candidate
        raise RuleLookupError(
            f"unknown rule version {version_id!r} (known: {[v.version for v in self.versions]})"
        )

    def plan_on(self, plan_id: str, day: date) -> PlanRules:
        """Shorthand for ``version_on(day).plan(plan_id)``."""
        return self.version_on(day).plan(plan_id)
