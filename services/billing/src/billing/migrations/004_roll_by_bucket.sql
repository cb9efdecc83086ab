-- The roll, partitioned by payer bucket (64 ranges of 16 buckets). A shard reads a range of
-- buckets: stored in join order, one shard's rows were spread over most of the roll's pages
-- (the 10 M benchmark: 78,030 of 113,637 pages touched per shard of 1/64 of the members);
-- by bucket, a shard reads its own partitions. The primary key (bucket, member_id) serves
-- both the shard's ordered read and the projection's writes (events carry the payer id, so
-- the bucket of every change is known).
ALTER TABLE billing.roll_members RENAME TO roll_members_by_member;
ALTER INDEX billing.roll_members_bucket RENAME TO roll_members_by_member_bucket;
ALTER TABLE billing.roll_members_by_member RENAME CONSTRAINT roll_members_pkey
    TO roll_members_by_member_pkey;

CREATE TABLE billing.roll_members (
    member_id text NOT NULL,
    payer_id text NOT NULL,
    plan text NOT NULL,
    joined_on date NOT NULL,
    left_on date,
    bucket smallint NOT NULL CHECK (bucket >= 0 AND bucket < 1024),
    seq bigint NOT NULL DEFAULT nextval('billing.roll_seq'),
    left_seq bigint,
    prev_plan text,
    plan_seq bigint,
    PRIMARY KEY (bucket, member_id)
) PARTITION BY RANGE (bucket);

DO $$
BEGIN
    FOR i IN 0..63 LOOP
        EXECUTE format('CREATE TABLE billing.roll_members_%s PARTITION OF billing.roll_members '
                       'FOR VALUES FROM (%s) TO (%s)', lpad(i::text, 2, '0'), i * 16, i * 16 + 16);
    END LOOP;
END $$;

INSERT INTO billing.roll_members (member_id, payer_id, plan, joined_on, left_on, bucket, seq,
                                  left_seq, prev_plan, plan_seq)
SELECT member_id, payer_id, plan, joined_on, left_on, bucket, seq, left_seq, prev_plan,
       plan_seq
FROM billing.roll_members_by_member ORDER BY bucket, member_id;
ALTER SEQUENCE billing.roll_seq OWNED BY billing.roll_members.seq;
DROP TABLE billing.roll_members_by_member;
