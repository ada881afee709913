-- A reversed claim (its provider cancelled the check-in) is no longer approved and its
-- refund is not paid: card_usage takes it back out. ClaimReversed names no card, so each
-- counted approval's card and amount are kept here; a reversal read before its approval
-- (the topics are consumed independently) is kept too, and the approval is then not
-- counted as approved or refunded.
CREATE TABLE card_usage_claims (
    claim_id      uuid    PRIMARY KEY,
    card_id       uuid    REFERENCES cards,  -- NULL while only the reversal is known
    amount_cents  bigint  NOT NULL DEFAULT 0,
    reversed      boolean NOT NULL DEFAULT false
);
