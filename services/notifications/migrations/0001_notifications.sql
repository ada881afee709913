CREATE TABLE organisations (
    organisation_id uuid PRIMARY KEY,
    name            text NOT NULL,
    kind            text NOT NULL,
    contact_email   text,
    webhook_url     text
);

CREATE TABLE holders (
    holder_id       uuid PRIMARY KEY,
    referrer_org_id uuid NOT NULL
);

-- One row per (event, recipient): the unique key is what makes a redelivered event unable
-- to send a second message. The worker sends pending rows and records each attempt.
CREATE TABLE deliveries (
    delivery_id     uuid PRIMARY KEY,
    event_id        uuid NOT NULL,
    correlation_id  text NOT NULL,
    kind            text NOT NULL,
    recipient       text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('email', 'webhook', 'letter')),
    address         text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        int  NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (event_id, recipient)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
