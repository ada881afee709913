-- How each card is used, learnt from the claims service's outcomes: referrers follow up
-- on take-up ("issuing cards is not enough") without the cards service seeing any claim.
CREATE TABLE card_usage (
    card_id        uuid PRIMARY KEY REFERENCES cards,
    first_used_at  timestamptz NOT NULL,
    last_used_at   timestamptz NOT NULL,
    checkins       int    NOT NULL DEFAULT 0,
    approved       int    NOT NULL DEFAULT 0,
    refunded_cents bigint NOT NULL DEFAULT 0
);
