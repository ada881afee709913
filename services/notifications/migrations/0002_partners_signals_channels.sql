-- What the notifications service keeps of other services' events: enough to decide whom to
-- tell and to derive signals (unused cards, silent devices, budget lines), nothing more.

ALTER TABLE holders
    ADD COLUMN channel        text NOT NULL DEFAULT 'email',
    ADD COLUMN language       text NOT NULL DEFAULT 'nl',
    -- Sealed for us by the cards service; opened only when a message is rendered.
    ADD COLUMN contact_sealed text;

CREATE TABLE providers (
    provider_id     uuid PRIMARY KEY,
    organisation_id uuid,
    name            text NOT NULL,
    contact_email   text
);

CREATE TABLE cards (
    card_id         uuid PRIMARY KEY,
    card_number     text NOT NULL,
    holder_id       uuid NOT NULL,
    referrer_org_id uuid NOT NULL,
    status          text NOT NULL DEFAULT 'active',
    issued_at       timestamptz NOT NULL,
    -- Latest check-in seen with this card (approved or rejected): "in use" is about the
    -- person showing up, not about the refund.
    last_used_at    timestamptz
);
CREATE INDEX cards_by_holder ON cards (holder_id, issued_at DESC);

CREATE TABLE eligibilities (
    holder_id       uuid NOT NULL,
    target_group    text NOT NULL,
    eligible_until  date NOT NULL,
    referrer_org_id uuid NOT NULL,
    PRIMARY KEY (holder_id, target_group)
);

-- One row per decided check-in: the provider statement and budget lines are sums over it.
CREATE TABLE checkins (
    claim_id     uuid PRIMARY KEY,
    provider_id  uuid NOT NULL,
    holder_id    uuid,
    target_group text,
    approved     boolean NOT NULL,
    price_cents  bigint NOT NULL DEFAULT 0,
    amount_cents bigint NOT NULL DEFAULT 0,
    occurred_at  timestamptz NOT NULL,
    reversed     boolean NOT NULL DEFAULT false
);
CREATE INDEX checkins_by_provider ON checkins (provider_id, occurred_at);

CREATE TABLE budget_spend (
    budget_line text   NOT NULL,
    year        int    NOT NULL,
    spent_cents bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (budget_line, year)
);

CREATE TABLE payments (
    payment_id           uuid PRIMARY KEY,
    run_id               uuid NOT NULL,
    payee_kind           text NOT NULL,
    payee_id             uuid NOT NULL,
    amount_cents         bigint NOT NULL,
    structured_reference text NOT NULL
);

CREATE TABLE devices (
    device_id      uuid PRIMARY KEY,
    provider_id    uuid NOT NULL,
    last_seen_at   timestamptz,
    revoked        boolean NOT NULL DEFAULT false
);
CREATE TABLE device_days (
    device_id uuid NOT NULL,
    day       date NOT NULL,
    PRIMARY KEY (device_id, day)
);

-- Per recipient ("org:<id>", "provider:<id>", "holder:<id>", "finance"): a channel override,
-- a language, whether digestible messages wait for the daily digest, and opt-outs by kind
-- ('*' opts out of everything).
CREATE TABLE preferences (
    recipient  text PRIMARY KEY,
    channel    text CHECK (channel IN ('email', 'webhook', 'letter')),
    language   text CHECK (language IN ('nl', 'en')),
    digest     boolean NOT NULL DEFAULT true,
    opted_out  text[] NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Daily and periodic jobs already run, so that the scheduler runs each once per period.
CREATE TABLE job_runs (
    job     text NOT NULL,
    period  text NOT NULL,
    ran_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, period)
);

-- Deliveries now cover every channel and batch:
--   scheduled: waits for a daily batch (batch = 'digest' or 'letters');
--   batched:   went out inside the digest delivery `batch_ref`;
--   skipped:   the recipient opted out (kept so that the log shows why nothing was sent).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'dead', 'scheduled', 'batched', 'skipped'));
ALTER TABLE deliveries
    ADD COLUMN language   text NOT NULL DEFAULT 'nl',
    ADD COLUMN batch      text CHECK (batch IN ('digest', 'letters')),
    ADD COLUMN batch_ref  text,
    -- Structured facts: the webhook body, and what attachments are rendered from.
    ADD COLUMN payload    jsonb NOT NULL DEFAULT '{}';
CREATE INDEX deliveries_scheduled ON deliveries (batch, recipient) WHERE status = 'scheduled';
CREATE INDEX deliveries_log ON deliveries (created_at DESC);
