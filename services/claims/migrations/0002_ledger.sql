-- The municipal cost ledger: double entry, append-only, integer cents.
-- Each transfer moves an amount from one account (debit) to another (credit), so every
-- transfer balances by construction and so does the whole ledger.
CREATE TABLE accounts (
    account    text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('expense', 'payable', 'clearing', 'bank', 'receivable')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE transfers (
    transfer_id    uuid PRIMARY KEY,
    debit_account  text   NOT NULL REFERENCES accounts,
    credit_account text   NOT NULL REFERENCES accounts,
    amount_cents   bigint NOT NULL CHECK (amount_cents > 0),
    code           text   NOT NULL,
    claim_id       uuid,
    payment_id     uuid,
    reverses       uuid REFERENCES transfers,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (debit_account <> credit_account)
);
CREATE INDEX transfers_debit ON transfers (debit_account);
CREATE INDEX transfers_credit ON transfers (credit_account);
CREATE INDEX transfers_claim ON transfers (claim_id) WHERE claim_id IS NOT NULL;

CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: post a reversing transfer instead';
END $$;
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();

CREATE TABLE payment_runs (
    run_id      uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    payments    int    NOT NULL,
    total_cents bigint NOT NULL
);

CREATE TABLE payments (
    payment_id   uuid PRIMARY KEY,
    run_id       uuid NOT NULL REFERENCES payment_runs,
    payee_kind   text NOT NULL,
    payee_id     uuid NOT NULL,
    account      text NOT NULL REFERENCES accounts,
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    reference    text NOT NULL UNIQUE,
    claims       int  NOT NULL,
    status       text NOT NULL CHECK (status IN ('requested', 'settled', 'failed')),
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz
);
