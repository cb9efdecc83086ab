-- Personal data lives only here: the clear name, and the national ID as a keyed hash plus
-- its masked form (the clear number is never stored; lookups go through the hash).
CREATE TABLE membership.members (
    member_id text PRIMARY KEY,
    payer_id text NOT NULL,
    plan text NOT NULL,
    relation text NOT NULL,
    name text NOT NULL,
    masked_name text NOT NULL,
    national_id_hash text NOT NULL,
    masked_national_id text NOT NULL,
    birth_date date NOT NULL,
    joined_on date NOT NULL,
    waiting_period_ends_on date NOT NULL,
    status text NOT NULL DEFAULT 'active',
    status_on date,
    rule_version text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- One active membership per person across all plans; also the lookup by ID hash.
CREATE UNIQUE INDEX members_active_person ON membership.members (national_id_hash)
    WHERE status = 'active';
-- "Who does this payer pay for": leave order and lapse touch only the payer's rows.
CREATE INDEX members_payer ON membership.members (payer_id) WHERE status = 'active';
