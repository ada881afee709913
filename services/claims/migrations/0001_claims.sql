-- Projections of the cards service's events: what claims needs to judge a check-in.
CREATE TABLE cards (
    card_id          uuid PRIMARY KEY,
    card_number      text NOT NULL UNIQUE,
    holder_id        uuid NOT NULL,
    target_group     text NOT NULL,
    eligible_from    date NOT NULL,
    eligible_until   date NOT NULL,
    grace_days       int  NOT NULL,
    resident         boolean NOT NULL,
    sub_municipality text,
    issued_at        timestamptz NOT NULL
);
CREATE INDEX cards_holder ON cards (holder_id);

-- Status over time, so a late check-in is judged by the status it had when it happened.
CREATE TABLE card_status_history (
    card_id      uuid NOT NULL,
    status       text NOT NULL,
    effective_at timestamptz NOT NULL,
    reason       text NOT NULL DEFAULT '',
    PRIMARY KEY (card_id, effective_at, status)
);

CREATE TABLE holders (
    holder_id          uuid PRIMARY KEY,
    referrer_org_id    uuid,
    beneficiary_sealed text,
    erased_at          timestamptz
);

CREATE TABLE providers (
    provider_id        uuid PRIMARY KEY,
    name               text NOT NULL,
    sub_municipality   text NOT NULL,
    mode               text NOT NULL,
    partner            boolean NOT NULL,
    beneficiary_sealed text
);

CREATE TABLE devices (
    device_id   uuid PRIMARY KEY,
    provider_id uuid NOT NULL,
    public_key  text NOT NULL,
    key_id      int  NOT NULL,
    revoked_at  timestamptz
);

-- A nonce is accepted once per device: a second use is a replay.
CREATE TABLE device_nonces (
    device_id  uuid NOT NULL,
    nonce      text NOT NULL,
    checkin_id uuid NOT NULL,
    PRIMARY KEY (device_id, nonce)
);

-- One row per check-in: its one outcome. The unique checkin_id is what makes a duplicate
-- delivery unable to produce a second claim, whatever the inbox says.
CREATE TABLE claims (
    claim_id       uuid PRIMARY KEY,
    checkin_id     uuid NOT NULL UNIQUE,
    event_id       uuid NOT NULL,
    correlation_id text NOT NULL,
    card_id        uuid,
    holder_id      uuid,
    provider_id    uuid NOT NULL,
    device_id      uuid NOT NULL,
    activity_id    text NOT NULL,
    category       text NOT NULL,
    target_group   text,
    price_cents    bigint NOT NULL CHECK (price_cents >= 0),
    amount_cents   bigint NOT NULL CHECK (amount_cents >= 0),
    outcome        text NOT NULL CHECK (outcome IN ('approved', 'capped', 'rejected')),
    reason         text,
    detail         text NOT NULL DEFAULT '',
    payee_kind     text,
    occurred_at    timestamptz NOT NULL,
    decided_at     timestamptz NOT NULL,
    reversed_at    timestamptz,
    CHECK ((outcome = 'rejected') = (reason IS NOT NULL)),
    CHECK ((outcome = 'rejected') = (amount_cents = 0))
);
CREATE INDEX claims_holder ON claims (holder_id, occurred_at);

-- Check-ins that could not be authenticated (unknown device, bad signature, replay): kept
-- apart, so a forged message can never take the check-in id of a genuine one.
CREATE TABLE unauthenticated_checkins (
    event_id    uuid PRIMARY KEY,
    checkin_id  uuid NOT NULL,
    device_id   uuid NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unauthenticated_checkin ON unauthenticated_checkins (checkin_id);

-- Budget used per holder and budget year. The CHECK is the last guard: even two consumers
-- racing after a rebalance cannot push a holder past the limit.
CREATE TABLE budget_usage (
    holder_id   uuid   NOT NULL,
    period      int    NOT NULL,
    used_cents  bigint NOT NULL DEFAULT 0,
    limit_cents bigint NOT NULL,
    PRIMARY KEY (holder_id, period),
    CHECK (used_cents >= 0 AND used_cents <= limit_cents)
);

CREATE TABLE activity_days (
    holder_id   uuid NOT NULL,
    activity_id text NOT NULL,
    day         date NOT NULL,
    claim_id    uuid NOT NULL,
    PRIMARY KEY (holder_id, activity_id, day)
);

-- Cancellations that arrived before their check-in: applied when it comes.
CREATE TABLE pending_cancellations (
    checkin_id   uuid PRIMARY KEY,
    reason       text NOT NULL,
    cancelled_at timestamptz NOT NULL
);
