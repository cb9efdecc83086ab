-- Cases that passed final review, waiting for (or shown in) a publicity round.
CREATE TABLE publicity.cases (
    case_id text PRIMARY KEY,
    claimant_id text NOT NULL,
    claimant_payer_id text NOT NULL,
    ready_on date NOT NULL,
    notice jsonb NOT NULL,          -- the masked CaseReadyForPublicity as received
    round_date date
);
CREATE INDEX cases_waiting ON publicity.cases (ready_on) WHERE round_date IS NULL;
CREATE INDEX cases_round ON publicity.cases (round_date);

CREATE TABLE publicity.rounds (
    round_date date PRIMARY KEY,
    objection_deadline date NOT NULL,
    closed boolean NOT NULL DEFAULT false
);

CREATE TABLE publicity.objections (
    objection_id text PRIMARY KEY,
    case_id text NOT NULL,
    member_id text NOT NULL,
    reason text NOT NULL,
    filed_on date NOT NULL,
    UNIQUE (case_id, member_id)
);

-- Who may object: publicity's own view of membership events.
CREATE TABLE publicity.members (
    member_id text PRIMARY KEY,
    payer_id text NOT NULL,
    active boolean NOT NULL
);
