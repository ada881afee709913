-- Heartbeats are verified like check-ins: against the public key the cards service
-- registered for the device (DeviceRegistered; a newer key_id is a rotated key). A device
-- known only from its revocation, or from before this migration, has no key: its heartbeats
-- are refused as from an unknown device until a registration brings one.
--
-- last_seen_at is now when *we* received the device's latest accepted heartbeat. What the
-- device said about its own clock is kept for people to read, never to judge silence by:
-- reported_at is the (signed) sent_at of that heartbeat, also what a later heartbeat must
-- beat to count (an older or equal one is a replay); clock_offset_ms is its own estimate of
-- how far its clock is off.
ALTER TABLE devices
    ADD COLUMN public_key      text,
    ADD COLUMN key_id          int,
    ADD COLUMN reported_at     timestamptz,
    ADD COLUMN clock_offset_ms bigint;

-- PaymentSettled / PaymentFailed that arrived before their PaymentRequested (other topics,
-- other partitions): parked here and announced when the request arrives, under the
-- outcome's own event id, so that the holder or referrer hears it once, as if in order.
-- The envelope and body are kept as they came (the body names no person; a failure's
-- reason is the bank's text).
CREATE TABLE early_payment_outcomes (
    event_id   uuid PRIMARY KEY,
    payment_id uuid NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('settled', 'failed')),
    envelope   jsonb NOT NULL,
    event      jsonb NOT NULL,
    parked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX early_payment_outcomes_by_payment ON early_payment_outcomes (payment_id);
