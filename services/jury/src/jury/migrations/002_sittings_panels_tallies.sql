-- The plan of each case, so a dispute is judged by its own plan's jury rules. NULL for
-- cases filed before this migration: they are judged as critical_illness, the only plan
-- jury read its rules from until then.
ALTER TABLE jury.case_parties ADD COLUMN plan text;

-- A dispute that arrived before the case's ClaimFiled: opened when the parties are known,
-- never with the exclusions unknown.
CREATE TABLE jury.held_disputes (
    case_id text PRIMARY KEY,
    disputed_on date NOT NULL
);

-- One row per sitting: a case sits once per origin (an upheld appeal goes on to publicity
-- and may come back disputed). The rule values are copied from the rulebook at opening.
ALTER TABLE jury.cases
    ADD COLUMN origin text NOT NULL DEFAULT 'dispute',
    ADD COLUMN plan text NOT NULL DEFAULT 'critical_illness',
    ADD COLUMN panel_size int NOT NULL DEFAULT 11,
    ADD COLUMN quorum_numerator int NOT NULL DEFAULT 2,
    ADD COLUMN quorum_denominator int NOT NULL DEFAULT 3,
    ADD COLUMN vote_window_hours int NOT NULL DEFAULT 72,
    ADD COLUMN opens_at timestamptz,
    ADD COLUMN draw_round int NOT NULL DEFAULT 0,
    ADD COLUMN seats int NOT NULL DEFAULT 0,
    ADD COLUMN last_closed_at timestamptz;
-- Existing sittings were opened at the start of their window; new rows always say so.
UPDATE jury.cases SET opens_at = closes_at - make_interval(hours => vote_window_hours);
ALTER TABLE jury.cases
    ALTER COLUMN opens_at SET NOT NULL,
    ALTER COLUMN origin DROP DEFAULT,
    ALTER COLUMN plan DROP DEFAULT,
    ALTER COLUMN panel_size DROP DEFAULT,
    ALTER COLUMN quorum_numerator DROP DEFAULT,
    ALTER COLUMN quorum_denominator DROP DEFAULT,
    ALTER COLUMN vote_window_hours DROP DEFAULT,
    DROP CONSTRAINT cases_pkey,
    ADD PRIMARY KEY (case_id, origin);

-- Votes belong to a sitting, and in panel mode to the draw round they were cast in.
ALTER TABLE jury.votes
    ADD COLUMN origin text NOT NULL DEFAULT 'dispute',
    ADD COLUMN draw_round int NOT NULL DEFAULT 0;
ALTER TABLE jury.votes
    ALTER COLUMN origin DROP DEFAULT,
    ALTER COLUMN draw_round DROP DEFAULT,
    DROP CONSTRAINT votes_pkey,
    ADD PRIMARY KEY (case_id, origin, juror_id);

-- Running counters, updated in the transaction that stores the votes, so closing a case
-- with 250,000 votes reads a row instead of counting them.
CREATE TABLE jury.tallies (
    case_id text NOT NULL,
    origin text NOT NULL,
    draw_round int NOT NULL,
    votes_for bigint NOT NULL,
    votes_against bigint NOT NULL,
    PRIMARY KEY (case_id, origin, draw_round)
);
INSERT INTO jury.tallies
SELECT case_id, origin, draw_round, count(*) FILTER (WHERE approve),
       count(*) FILTER (WHERE NOT approve)
FROM jury.votes GROUP BY case_id, origin, draw_round;

-- Everyone ever seated on a panel of a case (never drawn for it twice). A juror replaced
-- for not voting keeps the row with the round they left in.
CREATE TABLE jury.panel_seats (
    case_id text NOT NULL,
    juror_id text NOT NULL,
    origin text NOT NULL,
    drawn_round int NOT NULL,
    released_round int,
    PRIMARY KEY (case_id, juror_id)
);
