CREATE TABLE jury.members (
    member_id text PRIMARY KEY,
    payer_id text NOT NULL,
    birth_date date NOT NULL,
    joined_on date NOT NULL,
    active boolean NOT NULL
);

CREATE TABLE jury.jurors (
    member_id text PRIMARY KEY,
    exam_score int NOT NULL,
    qualified_on date NOT NULL
);

-- Claimants whose cases were rejected for fraud: never jurors.
CREATE TABLE jury.fraud_records (member_id text PRIMARY KEY);

-- Who filed which case, so exclusions are known when the case reaches the jury.
CREATE TABLE jury.case_parties (
    case_id text PRIMARY KEY,
    claimant_id text NOT NULL,
    claimant_payer_id text NOT NULL
);

CREATE TABLE jury.objectors (
    case_id text NOT NULL,
    member_id text NOT NULL,
    PRIMARY KEY (case_id, member_id)
);

CREATE TABLE jury.cases (
    case_id text PRIMARY KEY,
    claimant_id text NOT NULL,
    claimant_payer_id text NOT NULL,
    mode text NOT NULL,
    min_votes int NOT NULL,
    approval_majority_pct int NOT NULL,
    closes_at timestamptz NOT NULL,
    decided boolean NOT NULL DEFAULT false
);

CREATE TABLE jury.votes (
    case_id text NOT NULL,
    juror_id text NOT NULL,
    approve boolean NOT NULL,
    cast_at timestamptz NOT NULL,
    PRIMARY KEY (case_id, juror_id)
);
