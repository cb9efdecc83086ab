-- Results from the payment system, per instruction.
ALTER TABLE billing.instructions
    ADD COLUMN result_at timestamptz,
    ADD COLUMN failure_reason text,
    ADD COLUMN settled_on date;
-- A payer's debits, newest period first: the arrears check reads only those.
CREATE INDEX instructions_payer ON billing.instructions (account_id, period_id)
    WHERE kind = 'debit';
