-- Billing's own projection of the sharing roll, from membership events.
CREATE TABLE billing.roll_members (
    member_id text PRIMARY KEY,
    payer_id text NOT NULL,
    plan text NOT NULL,
    joined_on date NOT NULL,
    left_on date
);
-- A period's roll is "plan, joined before the roll date, not gone by it".
CREATE INDEX roll_members_plan ON billing.roll_members (plan, joined_on);

CREATE TABLE billing.approved_cases (
    case_id text PRIMARY KEY,
    plan text NOT NULL,
    member_id text NOT NULL,
    payer_id text NOT NULL,
    benefit_fen bigint NOT NULL CHECK (benefit_fen >= 0),
    approved_on date NOT NULL,
    period_id text
);
CREATE INDEX approved_cases_unshared ON billing.approved_cases (plan, approved_on)
    WHERE period_id IS NULL;

CREATE TABLE billing.periods (
    period_id text PRIMARY KEY,
    plan text NOT NULL,
    sharing_date date NOT NULL,
    roll_date date NOT NULL,
    rule_version text NOT NULL,
    cases int NOT NULL,
    benefits_fen bigint NOT NULL,
    fee_fen bigint NOT NULL,
    members_sharing int NOT NULL,
    member_debits_fen bigint NOT NULL,
    subsidy_fen bigint NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now(),
    CHECK (member_debits_fen + subsidy_fen = benefits_fen + fee_fen)
);

CREATE TABLE billing.charges (
    period_id text NOT NULL,
    sharing_year int NOT NULL,
    member_id text NOT NULL,
    payer_id text NOT NULL,
    share_fen bigint NOT NULL,
    member_pays_fen bigint NOT NULL,
    PRIMARY KEY (period_id, member_id)
);
-- The annual cap needs what each member paid this year.
CREATE INDEX charges_member_year ON billing.charges (member_id, sharing_year);

CREATE TABLE billing.instructions (
    instruction_id text PRIMARY KEY,
    period_id text NOT NULL,
    kind text NOT NULL,
    account_id text NOT NULL,
    case_id text,
    amount_fen bigint NOT NULL,
    status text NOT NULL DEFAULT 'sent'
);
