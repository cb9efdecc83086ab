-- The date a closed round's outcomes carry (ClosePublicityRound.closed_on, default the
-- deadline); NULL while the round is open.
ALTER TABLE publicity.rounds ADD COLUMN closed_on date;

-- Calendar commands the built-in scheduler has written to the outbox, so a command still in
-- flight (not yet consumed) is not written again on the next tick, by a restart or by
-- another replica. The command id is derived from (type, round date) and kept for tracing.
CREATE TABLE publicity.scheduled_commands (
    command_type text NOT NULL,
    round_date date NOT NULL,
    command_id text NOT NULL,
    staged_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_date, command_type)
);

-- Sharing notices from billing, kept as the public record: one per sharing period and plan.
CREATE TABLE publicity.sharing_notices (
    period_id text PRIMARY KEY,
    plan text NOT NULL,
    sharing_date date NOT NULL,
    notice jsonb NOT NULL,          -- the SharingNoticePublished as emitted
    published_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sharing_notices_date ON publicity.sharing_notices (sharing_date);
