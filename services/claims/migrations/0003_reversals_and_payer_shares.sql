-- Cancellations, payer shares, claims linked to payments, and stricter ledger constraints.

-- A cancellation is honoured only from the provider of the check-in.
ALTER TABLE pending_cancellations ADD COLUMN provider_id uuid;

-- Frequency limits are counted from the claims themselves now (a reversed claim frees its
-- slot), serialised by a lock on the holder's row; the per-day table is no longer used.
DROP TABLE activity_days;
CREATE INDEX claims_holder_live ON claims (holder_id, occurred_at)
    WHERE outcome <> 'rejected' AND reversed_at IS NULL;

ALTER TABLE claims ADD COLUMN resident boolean;
ALTER TABLE claims ADD COLUMN reversal_reason text;
-- The payment that pays this claim out (NULL while unpaid, and again after a failure).
ALTER TABLE claims ADD COLUMN payment_id uuid;
CREATE INDEX claims_payment ON claims (payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX claims_unpaid ON claims (payee_kind, holder_id, provider_id)
    WHERE outcome <> 'rejected' AND payment_id IS NULL;
ALTER TABLE claims ADD CONSTRAINT claims_reversed_only_if_approved
    CHECK (reversed_at IS NULL OR outcome <> 'rejected');

-- Account names carry their kind; a transfer between two accounts of the same payee kind
-- is still allowed (e.g. payable -> clearing), but never an account of an unknown kind.
ALTER TABLE accounts ADD CONSTRAINT accounts_named_by_kind
    CHECK (account LIKE kind || ':%');
ALTER TABLE transfers ADD CONSTRAINT transfers_reversal_has_claim_or_payment
    CHECK (reverses IS NULL OR claim_id IS NOT NULL OR payment_id IS NOT NULL);
-- A transfer is reversed at most once.
CREATE UNIQUE INDEX transfers_reversed_once ON transfers (reverses) WHERE reverses IS NOT NULL;
CREATE INDEX transfers_created ON transfers (created_at);

-- A reversal mirrors what it reverses: same amount, accounts swapped. Checked in the
-- database, so no code path can post a "correction" that is not one.
CREATE FUNCTION ledger_reversal_mirrors() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE original transfers%ROWTYPE;
BEGIN
    IF NEW.reverses IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT * INTO original FROM transfers WHERE transfer_id = NEW.reverses;
    IF original.amount_cents <> NEW.amount_cents
       OR original.debit_account <> NEW.credit_account
       OR original.credit_account <> NEW.debit_account THEN
        RAISE EXCEPTION 'a reversal must move the same amount between the same accounts, swapped';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER transfers_reversal_mirrors BEFORE INSERT ON transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_reversal_mirrors();

-- No TRUNCATE either: the ledger is history.
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();

-- Which claims a payment paid, across attempts (a failed payment's claims are paid again
-- by a later one).
CREATE TABLE payment_claims (
    payment_id uuid NOT NULL REFERENCES payments,
    claim_id   uuid NOT NULL REFERENCES claims,
    PRIMARY KEY (payment_id, claim_id)
);
ALTER TABLE payments ADD COLUMN reason_code text;
ALTER TABLE payments ADD COLUMN bank_reference text;
