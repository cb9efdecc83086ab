-- Right to erasure (docs/membership.md#erasure): a former member's name, ID hash, masked
-- forms and birth date can be removed; the row, its ids, plan, dates and status stay.
ALTER TABLE membership.members
    ALTER COLUMN name DROP NOT NULL,
    ALTER COLUMN national_id_hash DROP NOT NULL,
    ALTER COLUMN masked_name DROP NOT NULL,
    ALTER COLUMN masked_national_id DROP NOT NULL,
    ALTER COLUMN birth_date DROP NOT NULL,
    ADD COLUMN erased_on date;
