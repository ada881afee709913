-- Reversals seen, by claim. ClaimReversed (keyed by holder) and ClaimApproved (keyed by
-- card) travel on different partitions, so a reversal can arrive first: the approval that
-- follows it then counts for no budget and tells the card holder nothing.
CREATE TABLE reversed_claims (
    claim_id    uuid PRIMARY KEY,
    reversed_at timestamptz NOT NULL
);
