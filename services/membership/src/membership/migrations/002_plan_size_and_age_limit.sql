ALTER TABLE membership.members ADD COLUMN end_reason text;

-- The daily age-limit sweep reads only active critical-illness members born on or before a
-- date: a partial index keeps that a range scan, not a walk over 100 million rows.
CREATE INDEX members_age_limit ON membership.members (birth_date)
    WHERE status = 'active' AND plan = 'critical_illness';

-- Members per plan and status, kept in step with every change in the same transaction:
-- counting 100 million rows on each metrics scrape is not an option.
CREATE TABLE membership.plan_counts (
    plan text NOT NULL,
    status text NOT NULL,
    members bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (plan, status)
);
INSERT INTO membership.plan_counts (plan, status)
SELECT p, s FROM unnest(ARRAY['chronic_cancer', 'critical_illness', 'elderly_cancer']) AS p,
                 unnest(ARRAY['active', 'ended', 'lapsed', 'left']) AS s;

-- Whether a plan has reached its dissolution threshold: the alert fires when one that had
-- reached it falls below, once per fall.
CREATE TABLE membership.plan_thresholds (
    plan text PRIMARY KEY,
    reached boolean NOT NULL DEFAULT false
);
INSERT INTO membership.plan_thresholds (plan)
VALUES ('chronic_cancer'), ('critical_illness'), ('elderly_cancer');
