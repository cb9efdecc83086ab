-- Claims' own copy of what membership published: enough to judge coverage at filing.
CREATE TABLE claims.coverage (
    member_id text PRIMARY KEY,
    payer_id text NOT NULL,
    plan text NOT NULL,
    masked_name text NOT NULL,
    masked_national_id text NOT NULL,
    birth_date date NOT NULL,
    joined_on date NOT NULL,
    waiting_period_ends_on date NOT NULL,
    active boolean NOT NULL DEFAULT true
);

CREATE TABLE claims.cases (
    case_id text PRIMARY KEY,
    member_id text NOT NULL,
    payer_id text NOT NULL,
    plan text NOT NULL,
    illness_code text NOT NULL,
    diagnosed_on date NOT NULL,
    hospital text NOT NULL,
    age_at_diagnosis int NOT NULL,
    benefit_fen bigint NOT NULL CHECK (benefit_fen >= 0),
    rule_version text NOT NULL,
    state text NOT NULL,
    investigation_summary text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- One benefit per member: the filing check looks up a member's cases.
CREATE INDEX cases_member ON claims.cases (member_id);

-- Every decision on a case, with who, when and why: the audit trail.
CREATE TABLE claims.case_log (
    id bigserial PRIMARY KEY,
    case_id text NOT NULL,
    event_type text NOT NULL,
    detail jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_log_case ON claims.case_log (case_id, id);
