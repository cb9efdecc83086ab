"""Sharing notices from billing, published as public records (SPEC §5, §7). Pure."""

from __future__ import annotations

from mutualaid.contracts.billing import SharingAnnounced
from mutualaid.contracts.publicity import SharingNoticePublished


def public_notice(announced: SharingAnnounced) -> SharingNoticePublished | None:
    """The public record of a sharing notice; ``None`` for a dry run, which billing computes
    to preview a period and which charges nobody."""
    if announced.dry_run:
        return None
    return SharingNoticePublished(
        period_id=announced.period_id, plan=announced.plan,
        sharing_date=announced.sharing_date, cases=announced.cases,
        case_ids=announced.case_ids, benefits_fen=announced.benefits_fen,
        fee_fen=announced.fee_fen, members_sharing=announced.members_sharing,
        base_share_fen=announced.base_share_fen,
        members_paying_one_fen_more=announced.members_paying_one_fen_more,
        subsidy_fen=announced.subsidy_fen)
