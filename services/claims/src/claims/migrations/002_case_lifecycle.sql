-- Coverage is judged on the diagnosis date, so keep when it stopped rather than whether it
-- is active now: a member who left after falling ill may still claim.
ALTER TABLE claims.coverage ADD COLUMN covered_until date;
UPDATE claims.coverage SET covered_until = current_date WHERE NOT active;
ALTER TABLE claims.coverage DROP COLUMN active;

ALTER TABLE claims.cases
    ADD COLUMN verified boolean,
    ADD COLUMN first_reviewer text,
    ADD COLUMN rejected_stage text,
    ADD COLUMN appealed boolean NOT NULL DEFAULT false;
