"""An example of every wire message, built from its model's JSON schema with hand-picked
sample values (one story: member ``m-1001`` joins, falls ill, case ``case-0042`` is shared
on 2020-06-14). Every example is validated against its model when it is built, so a
contract change that an example no longer fits fails ``make docs`` and the tests.

Used by ``docs/events.md`` and by ``mutualaid send ... --example``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson

from mutualaid.contracts import Command, Message, registered_types

#: Sample values by field name, wherever the field appears.
BY_FIELD: dict[str, Any] = {
    "member_id": "m-1001", "payer_id": "m-1001", "juror_id": "m-2002",
    "account_id": "m-1001", "case_id": "case-0042", "objection_id": "obj-0007",
    "migration_id": "migration-2020-01", "import_id": "import-0001",
    "plan": "critical_illness", "from_plan": "critical_illness", "to_plan": "elderly_cancer",
    "national_id": "110105199003070121", "name": "张三明", "masked_name": "张*明",
    "masked_national_id": "110***********0121", "relation": "self",
    "payer_credit_score": 700, "health_declaration": True, "chronic_conditions": [],
    "birth_date": "1990-03-07", "joined_on": "2020-01-02",
    "waiting_period_ends_on": "2020-04-01", "left_on": "2020-07-01",
    "last_sharing_date": "2020-06-28", "lapsed_on": "2020-08-01", "ended_on": "2020-07-15",
    "transferred_on": "2020-07-01", "on": "2020-07-01", "detected_on": "2020-07-01",
    "carries_on_until": "2021-07-01", "reason": "moving to another plan",
    "rule_version": "2020-01-01", "illness_code": "malignant_tumour",
    "hospital": "上海市第一人民医院", "diagnosed_on": "2020-05-26", "suspected_on": None,
    "is_accident": False, "investigator": "华安公估", "verified": True,
    "summary": "hospital records verified", "started_on": "2020-05-28",
    "investigated_on": "2020-05-31", "reviewer": "reviewer-01", "stage": "review",
    "approved": True, "reason_code": None, "note": None, "reviewed_on": "2020-06-01",
    "withdrawn_on": "2020-06-02", "appealed_on": "2020-06-03", "approved_on": "2020-06-10",
    "rejected_on": "2020-06-01", "ready_on": "2020-06-02", "age_at_diagnosis": 30,
    "age_band": "30-39", "benefit_fen": 30_000_000,
    "investigation_summary": "hospital records verified", "state": "approved",
    "round_date": "2020-06-07", "objection_deadline": "2020-06-10", "closed_on": None,
    "filed_on": "2020-06-08", "passed_on": "2020-06-11", "disputed_on": "2020-06-11",
    "exam_score": 92, "qualified_on": "2020-03-01", "approve": True,
    "cast_at": "2020-06-12T09:30:00+08:00", "closed_at": "2020-06-14T12:00:00+08:00",
    "decided_at": "2020-06-14T12:00:00+08:00", "voting_closes_at": "2020-06-14T12:00:00+08:00",
    "mode": "open", "origin": "dispute", "seed": "9f2c" * 16, "draw_round": 1,
    "sharing_date": "2020-06-14", "roll_date": "2020-06-07", "dry_run": False,
    "draft_rulebook": None, "plans": None, "period_id": "2020-06-14/critical_illness",
    "run_id": "5b0f8f0e-3c4a-4b7e-9d51-0d6c1f7a2e10", "shard": "0417", "batch_no": 0,
    "instruction_id": "2020-06-14/critical_illness/debit/m-1001", "kind": "debit",
    "settled_at": "2020-06-15T10:00:00+08:00", "failed_at": "2020-06-15T10:00:00+08:00",
    "settled_on": "2020-07-01", "reached_on": "2020-07-01",
    "failed_periods": ["2020-05-28/critical_illness", "2020-06-14/critical_illness"],
    "period_ids": ["2020-06-14/critical_illness"], "task_no": 3, "ok": True, "error": None,
    "shard_id": "2020-06-14/critical_illness#3", "roll_seq": 1_204_311,
    "previous_period_id": "2020-05-28/critical_illness", "bucket_lo": 48, "bucket_hi": 64,
    "operator_pays_joined_before": None, "annual_cap": None, "per_case_cap": None,
    "command_id": "3f0d6c2e-8a51-4d3b-a7f4-1b9e0c5d7a21", "command_type": "membership.JoinPlan",
    "message": "payer credit score 600 is below 650", "sha256": "ab" * 32,
    "event_type": "claims.ClaimReviewed", "recorded_at": "2020-06-01T10:00:00+08:00",
    "accepted": 1999, "active_members": 3_299_871, "threshold": 3_300_000,
    "coverage_ended": 12, "cases": 1, "votes_for": 1012, "votes_against": 211,
    "required_votes": 1000, "documents": [{"kind": "discharge_summary", "sha256": "ab" * 32}],
}

_N, _BENEFITS = 2_867, 30_000_000
_FEE = (_BENEFITS * 8 + 50) // 100  # 8 %, half up
_TOTAL = _BENEFITS + _FEE
#: One plan's sharing figures that add up: 300,000 CNY benefit, 8 % fee, 2,867 members.
SHARING = {"cases": 1, "case_ids": ["case-0042"], "benefits_fen": _BENEFITS, "fee_fen": _FEE,
           "total_fen": _TOTAL, "members_sharing": _N, "base_share_fen": _TOTAL // _N,
           "members_paying_one_fen_more": _TOTAL % _N, "member_debits_fen": _TOTAL,
           "subsidy_fen": 0}

#: Per message type, where field samples alone do not tell a consistent story (keys the
#: model does not have are left out).
BY_TYPE: dict[str, dict[str, Any]] = {
    "billing.SharingAnnounced": SHARING,
    "publicity.SharingNoticePublished": SHARING,
    "billing.SharingRunStarted": {"members_sharing": _N, "shards": 64},
    "billing.SettleArrears": {"amount_fen": 2 * (_TOTAL // _N)},
    "billing.ArrearsSettled": {"amount_fen": 2 * (_TOTAL // _N)},
    "billing.PaymentInstructionBatch": {"instructions": [{
        "instruction_id": "2020-06-14/critical_illness/debit/m-1001", "kind": "debit",
        "period_id": "2020-06-14/critical_illness", "account_id": "m-1001",
        "amount_fen": 2 * (_TOTAL // _N), "case_id": None,
        "lines": [{"member_id": "m-1001", "amount_fen": _TOTAL // _N},
                  {"member_id": "m-1002", "amount_fen": _TOTAL // _N}]}]},
    "billing.SharingPeriodCompleted": {"plans": [{
        "plan": "critical_illness", "period_id": "2020-06-14/critical_illness",
        "benefits_fen": _BENEFITS, "fee_fen": _FEE, "member_debits_fen": _TOTAL,
        "subsidy_fen": 0, "debit_instructions": 1_790, "credit_instructions": 1}]},
    "billing.ShardAssigned": {"members": [44] * 16, "extras": [1] * 16,
                              "base_share_fen": _TOTAL // _N, "cases": 1},
    "billing.ShardCompleted": {"members": 704, "shares_fen": 704 * (_TOTAL // _N) + 11,
                               "paying_one_fen_more": 11,
                               "member_debits_fen": 704 * (_TOTAL // _N) + 11,
                               "subsidy_fen": 0, "debit_instructions": 440},
    "payments.PaymentSucceeded": {"amount_fen": 2 * (_TOTAL // _N)},
    "payments.PaymentFailed": {"reason": "insufficient funds"},
    "membership.JoinPlan": {"chronic_conditions": []},
    "membership.MembersImported": {"rejected": [{
        "member_id": "m-1003", "reason_code": "CREDIT_SCORE_TOO_LOW",
        "message": "payer credit score 600 is below 650"}]},
    "membership.MemberCoverageEnded": {"reason": "benefit_paid"},
    "membership.LeavePlan": {"reason": None},
    "claims.WithdrawClaim": {"reason": "recovered without treatment"},
    "claims.AppealClaim": {"reason": "the hospital records were incomplete at review"},
    "claims.ClaimAppealed": {"reason": "the hospital records were incomplete at review"},
    "claims.CaseRejected": {"reason_code": "PRE_EXISTING",
                            "message": "malignancy suspected in the waiting period"},
    "claims.ClaimReviewed": {"rule_version": "2020-01-01"},
    "claims.CaseHistoryReported": {"entries": [
        {"event_type": "claims.ClaimFiled", "recorded_at": "2020-05-27T09:12:00+08:00",
         "detail": {"benefit_fen": 30_000_000, "rule_version": "2020-01-01"}},
        {"event_type": "claims.ClaimReviewed", "recorded_at": "2020-06-01T10:00:00+08:00",
         "detail": {"stage": "review", "reviewer": "reviewer-01", "approved": True}},
        {"event_type": "claims.CaseApproved", "recorded_at": "2020-06-10T00:05:00+08:00",
         "detail": {"approved_on": "2020-06-10"}}]},
    "publicity.FileObjection": {"member_id": "m-3003",
                                "reason": "the claimant was seen at work in May"},
    "publicity.ObjectionFiled": {"member_id": "m-3003",
                                 "reason": "the claimant was seen at work in May"},
    "publicity.PublicityRoundOpened": {"cases": 6},
    "jury.PanelDrawn": {"mode": "panel", "origin": "appeal",
                        "juror_ids": [f"m-{n}" for n in (2002, 2417, 3310, 4121, 5008)],
                        "kept_juror_ids": []},
    "jury.VotingInconclusive": {"votes_for": 412, "votes_against": 97,
                                "voting_closes_at": "2020-06-17T12:00:00+08:00"},
    "jury.QualifyJuror": {"member_id": "m-2002"},
    "jury.JurorQualified": {"member_id": "m-2002"},
}

#: Commands: examples come from another platform service; events from the service.
COMMAND_SOURCE = "partner-platform/ops"
EXAMPLE_TIME = "2020-06-14T02:00:00Z"


class ExampleError(ValueError):
    pass


def contract_types() -> dict[str, type[Message]]:
    """The platform's own wire messages (not a test's), in definition order."""
    return {t: m for t, m in registered_types().items()
            if m.__module__.startswith("mutualaid.contracts")}


def example_data(model: type[Message]) -> dict[str, Any]:
    """Sample ``data`` for a message type, validated against the model."""
    schema = model.model_json_schema()
    data = _sample(schema, schema.get("$defs", {}), field=None)
    overrides = dict(BY_TYPE.get(model.TYPE, {}))
    if model.TYPE.endswith(".CommandRejected"):
        service = model.TYPE.split(".", 1)[0]
        first = next((t for t, m in contract_types().items()
                      if issubclass(m, Command) and m.service() == service), "")
        overrides = {"command_type": first, "reason_code": "INVALID_DATA",
                     "message": "data.joined_on: Input should be a valid date"}
    data.update({k: v for k, v in overrides.items() if k in data})
    try:
        model.model_validate_json(orjson.dumps(data))
    except ValueError as exc:
        raise ExampleError(f"the example of {model.TYPE} does not fit its model "
                           f"(update mutualaid/cli/examples.py): {exc}") from None
    return data


def example_envelope(model: type[Message]) -> dict[str, Any]:
    """The whole CloudEvent of the example, as it travels on Kafka."""
    data = example_data(model)
    instance = model.model_validate_json(orjson.dumps(data))
    is_command = issubclass(model, Command)
    service = model.TYPE.split(".", 1)[0]
    return {"specversion": "1.0",
            "id": "3f0d6c2e-8a51-4d3b-a7f4-1b9e0c5d7a21" if is_command
            else "0b5e7f8a-1c2d-5e3f-8a9b-0c1d2e3f4a5b",
            "source": COMMAND_SOURCE if is_command else f"mutualaid/{service}",
            "type": model.TYPE, "time": EXAMPLE_TIME, "subject": instance.subject(),
            "datacontenttype": "application/json",
            "correlationid": "3f0d6c2e-8a51-4d3b-a7f4-1b9e0c5d7a21", "data": data}


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _sample(schema: dict[str, Any], defs: dict[str, Any], field: str | None) -> Any:
    schema = _resolve(schema, defs)
    if field is not None and field in BY_FIELD:
        return BY_FIELD[field]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if _resolve(o, defs).get("type") != "null"]
        return _sample(options[0], defs, None) if options else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: _sample(sub, defs, name)
                for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        if "prefixItems" in schema:
            return [_sample(s, defs, None) for s in schema["prefixItems"]]
        item = _sample(schema.get("items", {}), defs, _singular(field))
        return [item] * max(1, schema.get("minItems", 1))
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date":
            return date(2020, 6, 14).isoformat()
        if fmt == "date-time":
            return EXAMPLE_TIME
        return (field or "value").replace("_", "-")[: schema.get("maxLength", 64)]
    if kind == "integer":
        return max(schema.get("minimum", 0), min(100, schema.get("maximum", 100)))
    if kind == "boolean":
        return False
    return None


def _singular(field: str | None) -> str | None:
    if field and field.endswith("_ids"):
        return field[:-1]
    return None
