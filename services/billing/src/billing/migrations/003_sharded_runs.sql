-- Sharded sharing runs (docs/billing.md).

-- The roll: every row carries its payer's bucket (a payer's members share one, so one shard
-- holds a payer's whole debit) and the sequence numbers that let a run read the roll as it
-- stood when the run started, while membership events keep arriving.
CREATE SEQUENCE billing.roll_seq;
ALTER TABLE billing.roll_members
    ADD COLUMN bucket smallint,
    ADD COLUMN seq bigint NOT NULL DEFAULT nextval('billing.roll_seq'),
    ADD COLUMN left_seq bigint,
    ADD COLUMN prev_plan text,
    ADD COLUMN plan_seq bigint;
-- The same bucket function as billing.domain.sharing.bucket_of.
UPDATE billing.roll_members
    SET bucket = ('x' || left(md5(payer_id), 8))::bit(32)::int & 1023;
ALTER TABLE billing.roll_members ALTER COLUMN bucket SET NOT NULL;
DROP INDEX billing.roll_members_plan;
-- A shard reads a range of buckets in member order: one index range scan, no sort.
CREATE INDEX roll_members_bucket ON billing.roll_members (bucket, member_id);

CREATE TABLE billing.runs (
    run_id text PRIMARY KEY,
    sharing_date date NOT NULL,
    dry_run boolean NOT NULL,
    status text NOT NULL DEFAULT 'running',
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);

-- A period is written when its run starts and completed when every shard is in.
ALTER TABLE billing.periods
    ADD COLUMN run_id text REFERENCES billing.runs,
    ADD COLUMN dry_run boolean NOT NULL DEFAULT false,
    ADD COLUMN status text NOT NULL DEFAULT 'completed',
    ADD COLUMN roll_seq bigint,
    ADD COLUMN previous_period_id text,
    ADD COLUMN total_fen bigint,
    ADD COLUMN base_share_fen bigint,
    ADD COLUMN paying_one_fen_more int,
    ADD COLUMN case_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN failure text,
    ALTER COLUMN member_debits_fen DROP NOT NULL,
    ALTER COLUMN subsidy_fen DROP NOT NULL,
    ALTER COLUMN completed_at DROP NOT NULL,
    ALTER COLUMN completed_at DROP DEFAULT;
-- The annual cap reads the plan's latest completed period of the year.
CREATE INDEX periods_plan_date ON billing.periods (plan, sharing_date) WHERE NOT dry_run;

CREATE TABLE billing.shard_tasks (
    period_id text NOT NULL REFERENCES billing.periods,
    task_no int NOT NULL,
    bucket_lo int NOT NULL,
    bucket_hi int NOT NULL,
    members int NOT NULL,
    status text NOT NULL DEFAULT 'assigned',
    shares_fen bigint,
    paying_one_fen_more int,
    member_debits_fen bigint,
    subsidy_fen bigint,
    debit_instructions int,
    error text,
    done_at timestamptz,
    PRIMARY KEY (period_id, task_no)
);

-- Per-member charges, one partition per period (created by the run). No deployment has
-- stored charges in the unpartitioned table, so it is replaced rather than migrated.
DROP TABLE billing.charges;
CREATE TABLE billing.charges (
    period_id text NOT NULL,
    bucket smallint NOT NULL,
    member_id text NOT NULL,
    payer_id text NOT NULL,
    share_fen bigint NOT NULL,
    member_pays_fen bigint NOT NULL,
    -- What the member has paid in the plan this year, this period included (annual cap).
    paid_in_year_fen bigint NOT NULL
) PARTITION BY LIST (period_id);

-- Debit instructions are not stored row by row: a debit's id names its period and payer,
-- and its amount is the sum of that payer's charges. Credits (a few per period) and every
-- payment result are stored.
DROP INDEX billing.instructions_payer;
DELETE FROM billing.instructions WHERE kind = 'debit';
CREATE TABLE billing.debit_results (
    instruction_id text PRIMARY KEY,
    period_id text NOT NULL,
    payer_id text NOT NULL,
    amount_fen bigint NOT NULL,
    status text NOT NULL,
    result_at timestamptz,
    failure_reason text,
    settled_on date
);
-- A payer's debit results, for the arrears run and settling.
CREATE INDEX debit_results_payer ON billing.debit_results (payer_id, period_id);
