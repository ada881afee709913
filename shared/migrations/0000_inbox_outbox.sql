-- Inbox: one row per (consumer, event) processed. Inserted in the same transaction as the
-- effect, so a redelivered event finds its row and changes nothing.
CREATE TABLE inbox (
    consumer    text        NOT NULL,
    event_id    uuid        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Outbox: events to publish, written in the same transaction as the state change.
-- The relay claims unpublished rows with FOR UPDATE SKIP LOCKED; it never tails the
-- bigserial, because insert order is not commit order.
CREATE TABLE outbox (
    seq          bigserial   PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    topic        text        NOT NULL,
    key          bytea       NOT NULL,
    headers      jsonb       NOT NULL,
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
