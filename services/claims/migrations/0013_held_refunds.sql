-- Card holders whose refunds a payment run holds because no bank account of theirs is
-- known (services/claims/payments.py): one row per hold, so that RefundHeld is published
-- once per hold, not at every run. The run that pays the holder ends the hold.
CREATE TABLE held_refunds (
    holder_id uuid PRIMARY KEY,
    held_at   timestamptz NOT NULL
);
