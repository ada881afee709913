-- A payment the bank returns after it was settled (an R-transaction: the account closed
-- after booking, ...): its amount is owed again and its claims are paid by a later run
-- (services/claims/payments.py). `closed_at` stays the settlement's time.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('requested', 'settled', 'failed', 'returned'));
ALTER TABLE payments ADD COLUMN returned_at timestamptz;
ALTER TABLE payments ADD CONSTRAINT payments_returned_when_and_why
    CHECK ((status = 'returned') = (returned_at IS NOT NULL)
           AND (status <> 'returned' OR reason_code IS NOT NULL));
