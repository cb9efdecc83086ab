"""The rulebook: the shipped default, version selection, money helpers and broken files."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from mutualaid.rulebook import (
    PLAN_IDS,
    Rulebook,
    RulebookError,
    RuleLookupError,
    load_rulebook,
)

RULEBOOK = load_rulebook()
CI = RULEBOOK.version("2020-01-01").plan("critical_illness")


# -- the shipped default ---------------------------------------------------------------


@pytest.mark.domain
def test_default_rulebook_loads_with_all_versions_and_plans() -> None:
    assert isinstance(RULEBOOK, Rulebook)
    assert [v.version for v in RULEBOOK.versions] == [
        "2018-10-16",
        "2018-11-27",
        "2019-01-01",
        "2020-01-01",
    ]
    for version in RULEBOOK.versions:
        assert set(version.plans) == set(PLAN_IDS)
        for plan_id in PLAN_IDS:
            rules = version.plan(plan_id)
            assert rules.plan_id == plan_id
            assert rules.health_declaration_required is True
            assert rules.chronic_condition_required is (plan_id == "chronic_cancer")
            assert len(rules.chronic_condition_groups) == 8
            assert rules.waiting_period_days == 90
            assert rules.pre_existing_lookback_days == 90
            assert (rules.publicity_days, rules.sharing_days) == ((7, 21), (14, 28))
            assert rules.objection_window_days == 3
            assert rules.jury.mode == "open" and rules.jury.min_votes == 1000
            assert rules.jury.vote_window_hours == 72
            assert rules.arrears_limit_periods == 2
            assert rules.dissolution_threshold_members == 3_300_000


@pytest.mark.domain
def test_default_covered_illnesses() -> None:
    for version in RULEBOOK.versions:
        ci = version.plan("critical_illness")
        assert len(ci.covered_illnesses) == 99
        assert ci.covers("acute_myocardial_infarction") and ci.covers("malignant_tumour")
        assert ci.is_malignant("malignant_tumour") and not ci.is_malignant("stroke_sequelae")
        for plan_id in ("elderly_cancer", "chronic_cancer"):
            cancer = version.plan(plan_id)
            assert cancer.covers("leukaemia")
            assert not cancer.covers("acute_myocardial_infarction")
            assert all(i.malignant for i in cancer.covered_illnesses.values())
    assert not CI.covers("common_cold")
    assert not CI.is_malignant("common_cold")


@pytest.mark.domain
def test_rulebook_is_immutable() -> None:
    with pytest.raises(pydantic.ValidationError):
        CI.management_fee_bps = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        CI.covered_illnesses["common_cold"] = CI.covered_illnesses["rabies"]  # type: ignore[index]
    assert not CI.covers("common_cold")


@pytest.mark.domain
def test_default_rulebook_round_trips_through_json() -> None:
    assert Rulebook.model_validate_json(RULEBOOK.model_dump_json()) == RULEBOOK


# -- version selection ------------------------------------------------------------------

# (day, version in force, fee bps, annual cap, per-case cap)
BOUNDARIES = [
    (date(2018, 10, 16), "2018-10-16", 1000, None, 10),
    (date(2018, 10, 17), "2018-10-16", 1000, None, 10),
    (date(2018, 11, 26), "2018-10-16", 1000, None, 10),
    (date(2018, 11, 27), "2018-11-27", 800, None, 10),
    (date(2018, 11, 28), "2018-11-27", 800, None, 10),
    (date(2018, 12, 31), "2018-11-27", 800, None, 10),
    (date(2019, 1, 1), "2019-01-01", 800, 18_800, None),
    (date(2019, 1, 2), "2019-01-01", 800, 18_800, None),
    (date(2019, 12, 31), "2019-01-01", 800, 18_800, None),
    (date(2020, 1, 1), "2020-01-01", 800, None, None),
    (date(2020, 1, 2), "2020-01-01", 800, None, None),
    (date(2035, 6, 14), "2020-01-01", 800, None, None),
]


@pytest.mark.domain
@pytest.mark.parametrize("plan_id", PLAN_IDS)
@pytest.mark.parametrize(("day", "version_id", "bps", "annual_cap", "case_cap"), BOUNDARIES)
def test_version_on_picks_the_version_in_force(
    plan_id: str, day: date, version_id: str, bps: int, annual_cap: int | None, case_cap: int | None
) -> None:
    version = RULEBOOK.version_on(day)
    assert version.version == version_id
    assert version.effective_from <= day
    rules = RULEBOOK.plan_on(plan_id, day)
    assert rules is version.plan(plan_id)
    assert (rules.management_fee_bps, rules.annual_cap_fen, rules.per_case_cap_fen) == (
        bps,
        annual_cap,
        case_cap,
    )


@pytest.mark.domain
def test_version_on_before_the_first_version_is_a_clear_lookup_error() -> None:
    with pytest.raises(LookupError) as excinfo:
        RULEBOOK.version_on(date(2018, 10, 15))
    assert "2018-10-15" in str(excinfo.value) and "2018-10-16" in str(excinfo.value)


@pytest.mark.domain
def test_unknown_version_or_plan_is_a_clear_key_error() -> None:
    with pytest.raises(KeyError) as excinfo:
        RULEBOOK.version("2017-01-01")
    assert str(excinfo.value).startswith("unknown rule version '2017-01-01'")
    with pytest.raises(RuleLookupError) as excinfo:
        RULEBOOK.version("2019-01-01").plan("pet_insurance")
    assert "unknown plan 'pet_insurance'" in str(excinfo.value)
    assert "critical_illness" in str(excinfo.value)


# -- money -----------------------------------------------------------------------------


@pytest.mark.domain
@pytest.mark.parametrize(
    ("bps", "benefits", "fee"),
    [
        (800, 0, 0),
        (800, 6, 0),  # 0.48 rounds down
        (800, 7, 1),  # 0.56 rounds up
        (800, 30_000_000, 2_400_000),
        (800, 40_000_013, 3_200_001),  # 3,200,001.04
        (1000, 5, 1),  # exactly half: up
        (1000, 15, 2),  # 1.5 -> 2, not banker's 2 by luck: see 25
        (1000, 25, 3),  # 2.5 -> 3 (banker's rounding would give 2)
        (1000, 4, 0),
        (0, 123_456, 0),
        (10_000, 123_456, 123_456),
    ],
)
def test_management_fee_rounds_half_up(bps: int, benefits: int, fee: int) -> None:
    rules = CI.model_copy(update={"management_fee_bps": bps})
    assert rules.management_fee_fen(benefits) == fee


@pytest.mark.domain
@given(benefits=st.integers(0, 10**14), bps=st.integers(0, 10_000))
def test_management_fee_matches_decimal_half_up(benefits: int, bps: int) -> None:
    rules = CI.model_copy(update={"management_fee_bps": bps})
    expected = (Decimal(benefits) * bps / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    fee = rules.management_fee_fen(benefits)
    assert isinstance(fee, int)
    assert fee == int(expected)


@pytest.mark.domain
def test_management_fee_rejects_negative_benefits() -> None:
    with pytest.raises(ValueError, match="negative"):
        CI.management_fee_fen(-1)


@pytest.mark.domain
@pytest.mark.parametrize(
    ("plan_id", "age", "benefit"),
    [
        ("critical_illness", 0, 30_000_000),
        ("critical_illness", 39, 30_000_000),
        ("critical_illness", 40, 10_000_000),
        ("critical_illness", 59, 10_000_000),
        ("critical_illness", 60, None),
        ("critical_illness", 70, None),
        ("critical_illness", 71, None),
        ("chronic_cancer", 0, 30_000_000),
        ("chronic_cancer", 39, 30_000_000),
        ("chronic_cancer", 40, 10_000_000),
        ("chronic_cancer", 59, 10_000_000),
        ("chronic_cancer", 60, None),
        ("chronic_cancer", 70, None),
        ("chronic_cancer", 71, None),
        ("elderly_cancer", 0, None),
        ("elderly_cancer", 39, None),
        ("elderly_cancer", 40, None),
        ("elderly_cancer", 59, None),
        ("elderly_cancer", 60, 10_000_000),
        ("elderly_cancer", 70, 10_000_000),
        ("elderly_cancer", 71, None),
    ],
)
def test_benefit_by_age_at_first_diagnosis(plan_id: str, age: int, benefit: int | None) -> None:
    for version in RULEBOOK.versions:
        assert version.plan(plan_id).benefit_fen(age) == benefit


@pytest.mark.domain
def test_join_age_bands() -> None:
    ci = CI.join_age
    assert (ci.min_years, ci.min_days, ci.max_years) == (0, 30, 59)
    elderly = RULEBOOK.plan_on("elderly_cancer", date(2020, 1, 1)).join_age
    assert (elderly.min_years, elderly.min_days, elderly.max_years) == (60, 0, 70)


# -- operator-funded window and calendar --------------------------------------------------


@pytest.mark.domain
@pytest.mark.parametrize(
    ("joined_on", "sharing_date", "operator_pays"),
    [
        (date(2018, 10, 16), date(2018, 11, 14), True),
        (date(2018, 12, 30), date(2018, 12, 28), True),
        # January 2019 periods fall under the 2019-01-01 version, which carries the window.
        (date(2018, 12, 30), date(2019, 1, 14), True),
        (date(2018, 12, 30), date(2019, 1, 28), True),
        (date(2018, 12, 31), date(2019, 1, 14), False),  # joined on the cut-off: pays
        (date(2019, 1, 5), date(2019, 1, 28), False),
        (date(2018, 10, 16), date(2019, 2, 14), False),  # window over
        (date(2018, 10, 16), date(2020, 1, 14), False),
    ],
)
def test_operator_pays_under_the_version_of_the_sharing_date(
    joined_on: date, sharing_date: date, operator_pays: bool
) -> None:
    for plan_id in PLAN_IDS:
        rules = RULEBOOK.plan_on(plan_id, sharing_date)
        assert rules.operator_pays(joined_on, sharing_date) is operator_pays


@pytest.mark.domain
def test_operator_pays_window_edges_on_one_version() -> None:
    rules = RULEBOOK.version("2019-01-01").plan("critical_illness")
    assert rules.operator_pays(date(2018, 12, 30), date(2019, 1, 30))
    assert not rules.operator_pays(date(2018, 12, 30), date(2019, 1, 31))
    assert not RULEBOOK.version("2020-01-01").plan("critical_illness").operator_funded_windows


@pytest.mark.domain
@pytest.mark.parametrize(
    ("sharing_date", "roll_date"),
    [
        (date(2020, 6, 14), date(2020, 6, 7)),
        (date(2020, 6, 28), date(2020, 6, 21)),
        (date(2019, 2, 28), date(2019, 2, 21)),
        (date(2018, 12, 14), date(2018, 12, 7)),
    ],
)
def test_roll_date_is_the_publicity_day_before_the_sharing_day(
    sharing_date: date, roll_date: date
) -> None:
    assert CI.roll_date(sharing_date) == roll_date


@pytest.mark.domain
@pytest.mark.parametrize("day", [date(2020, 6, 7), date(2020, 6, 15), date(2020, 6, 30)])
def test_roll_date_rejects_a_day_that_is_not_a_sharing_day(day: date) -> None:
    with pytest.raises(ValueError, match="not a sharing day"):
        CI.roll_date(day)


@pytest.mark.domain
def test_jury_helpers() -> None:
    jury = CI.jury
    assert jury.quorum_met(8, 11) and not jury.quorum_met(7, 11)  # 2/3 of 11 is 7.33
    assert jury.approves(501, 1000) and not jury.approves(500, 1000)  # strictly > 50 %
    assert not jury.approves(0, 0)


# -- broken rulebooks ------------------------------------------------------------------


def _plan_defaults() -> dict[str, Any]:
    return {
        "join_age": {"min_days": 30, "max_years": 59},
        "health_declaration_required": True,
        "chronic_condition_required": False,
        "chronic_condition_groups": ["hypertension", "diabetes"],
        "covered_illnesses": {"malignant_tumour": {"name": "Malignant tumour", "malignant": True}},
        "benefit_bands": [
            {"min_age_years": 0, "max_age_years": 39, "benefit_fen": 30_000_000},
            {"min_age_years": 40, "max_age_years": 59, "benefit_fen": 10_000_000},
        ],
        "management_fee_bps": 800,
        "waiting_period_days": 90,
        "pre_existing_lookback_days": 90,
        "annual_cap_fen": None,
        "per_case_cap_fen": None,
        "operator_funded_windows": [],
        "publicity_days": [7, 21],
        "objection_window_days": 3,
        "sharing_days": [14, 28],
        "jury": {
            "mode": "panel",
            "min_votes": 1000,
            "panel_size": 11,
            "quorum_numerator": 2,
            "quorum_denominator": 3,
            "approval_majority_pct": 50,
            "vote_window_hours": 72,
        },
        "arrears_limit_periods": 2,
        "dissolution_threshold_members": 3_300_000,
    }


def _minimal() -> dict[str, Any]:
    """A small valid rulebook, built fresh for each test to break one thing in."""
    return {
        "versions": [
            {
                "version": f"v{year}",
                "effective_from": date(year, 1, 1),
                "defaults": _plan_defaults(),
                "plans": {
                    "critical_illness": None,
                    "elderly_cancer": {
                        "join_age": {"min_years": 60, "max_years": 70},
                        "benefit_bands": [
                            {"min_age_years": 60, "max_age_years": 70, "benefit_fen": 10_000_000}
                        ],
                    },
                    "chronic_cancer": {"chronic_condition_required": True},
                },
            }
            for year in (2019, 2020)
        ]
    }


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(RulebookError) as excinfo:
        load_rulebook(path)
    message = str(excinfo.value)
    assert str(path) in message
    return message


@pytest.mark.domain
def test_minimal_rulebook_loads_and_plan_keys_override_defaults(tmp_path: Path) -> None:
    rulebook = load_rulebook(_write(tmp_path, _minimal()))
    version = rulebook.version_on(date(2019, 6, 1))
    assert version.version == "v2019"
    assert version.plan("elderly_cancer").benefit_fen(65) == 10_000_000
    assert version.plan("critical_illness").benefit_fen(65) is None
    assert version.plan("chronic_cancer").chronic_condition_required is True
    assert version.plan("critical_illness").jury.mode == "panel"


@pytest.mark.domain
def test_missing_plan(tmp_path: Path) -> None:
    data = _minimal()
    del data["versions"][1]["plans"]["elderly_cancer"]
    message = _error(_write(tmp_path, data))
    assert "versions.1 ('v2020'): " in message
    assert "missing plan(s) ['elderly_cancer']" in message


@pytest.mark.domain
def test_unknown_plan(tmp_path: Path) -> None:
    data = _minimal()
    data["versions"][0]["plans"]["critcal_illness"] = None
    message = _error(_write(tmp_path, data))
    assert "unknown plan(s) ['critcal_illness']" in message


@pytest.mark.domain
def test_fee_above_100_percent(tmp_path: Path) -> None:
    data = _minimal()
    data["versions"][0]["plans"]["chronic_cancer"]["management_fee_bps"] = 12_000
    message = _error(_write(tmp_path, data))
    assert "versions.0 ('v2019').plans.chronic_cancer.management_fee_bps" in message
    assert "less than or equal to 10000" in message


@pytest.mark.domain
def test_fee_as_a_float_is_refused(tmp_path: Path) -> None:
    data = _minimal()
    data["versions"][0]["defaults"]["management_fee_bps"] = 800.0
    message = _error(_write(tmp_path, data))
    assert "management_fee_bps: Input should be a valid integer" in message


@pytest.mark.domain
def test_dates_out_of_order(tmp_path: Path) -> None:
    data = _minimal()
    data["versions"][1]["effective_from"] = date(2018, 6, 1)
    message = _error(_write(tmp_path, data))
    assert "strictly increasing" in message
    assert "'v2019' (2019-01-01) is followed by 'v2020' (2018-06-01)" in message


@pytest.mark.domain
def test_duplicate_version_id(tmp_path: Path) -> None:
    data = _minimal()
    data["versions"][1]["version"] = "v2019"
    message = _error(_write(tmp_path, data))
    assert "duplicate version id(s) ['v2019']" in message


@pytest.mark.domain
def test_bad_yaml_syntax(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("versions:\n  - version: [unclosed\n", encoding="utf-8")
    message = _error(path)
    assert "not valid YAML" in message and "line" in message


@pytest.mark.domain
def test_missing_file(tmp_path: Path) -> None:
    message = _error(tmp_path / "nowhere.yaml")
    assert "cannot read" in message and "No such file" in message


@pytest.mark.domain
def test_overlapping_benefit_bands(tmp_path: Path) -> None:
    data = _minimal()
    data["versions"][0]["defaults"]["benefit_bands"][1]["min_age_years"] = 39
    message = _error(_write(tmp_path, data))
    assert "benefit bands overlap or are out of order: 0-39 then 39-59" in message


@pytest.mark.domain
def test_even_panel_and_impossible_quorum(tmp_path: Path) -> None:
    data = _minimal()
    data["versions"][0]["plans"]["critical_illness"] = {
        "jury": {**_plan_defaults()["jury"], "panel_size": 10}
    }
    data["versions"][1]["defaults"]["jury"]["quorum_numerator"] = 4
    message = _error(_write(tmp_path, data))
    assert "plans.critical_illness.jury: jury panel_size must be odd, got 10" in message
    assert "jury quorum 4/3 exceeds 1" in message


@pytest.mark.domain
def test_unknown_key_no_illnesses_and_bad_days(tmp_path: Path) -> None:
    data = _minimal()
    defaults = data["versions"][0]["defaults"]
    defaults["waiting_days"] = 90  # typo of waiting_period_days
    defaults["covered_illnesses"] = {}
    defaults["sharing_days"] = [14, 30]
    message = _error(_write(tmp_path, data))
    assert "waiting_days: Extra inputs are not permitted" in message
    assert "covered_illnesses: " in message
    assert "sharing_days.1: Input should be less than or equal to 28" in message
    # one line per problem, each ``location: message``, for every plan that inherits it
    assert message.count("waiting_days") == len(PLAN_IDS)


@pytest.mark.domain
def test_not_a_rulebook_at_all(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, ["just", "a", "list"]))
    assert "(top level)" in message


@pytest.mark.domain
def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("", encoding="utf-8")
    assert "problem" in _error(path)


@pytest.mark.domain
def test_sharing_day_needs_an_earlier_publicity_day(tmp_path: Path) -> None:
    data = _minimal()
    data["versions"][0]["defaults"]["publicity_days"] = [14, 21]
    data["versions"][0]["defaults"]["sharing_days"] = [7, 28]
    message = _error(_write(tmp_path, data))
    assert "sharing day 7 has no publicity day before it" in message


@pytest.mark.domain
def test_first_version_in_minimal_book_rejects_earlier_days(tmp_path: Path) -> None:
    rulebook = load_rulebook(_write(tmp_path, _minimal()))
    first = rulebook.versions[0].effective_from
    with pytest.raises(LookupError):
        rulebook.version_on(first - timedelta(days=1))
    assert rulebook.version_on(first).version == "v2019"
