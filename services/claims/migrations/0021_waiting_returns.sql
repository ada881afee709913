-- A PaymentReturned read before the PaymentSettled of its payment: finance's answers come on
-- different topics (and partitions), so after an outage of claims, or a redelivery, they are
-- read in any order. Such a return was dead-lettered as unmatched, for an operator, for an
-- order the system itself made. It waits here instead, as it came (key, headers, body), and
-- is applied in the transaction that applies its payment's settlement
-- (services/claims/waiting_returns.py). Only a return of a payment claims has as requested,
-- of its amount, waits; one still here after the wait is dead-lettered as unmatched then.
CREATE TABLE waiting_returns (
    -- The inbox's key of the return (its event id and its body together).
    record_key       uuid PRIMARY KEY,
    payment_id       uuid NOT NULL REFERENCES payments (payment_id),
    correlation_id   text NOT NULL,
    key              bytea NOT NULL,
    -- [[name, value as latin-1], ...] as JSON bytes, as parked_checkins keeps them.
    headers          bytea NOT NULL,
    payload          bytea NOT NULL,
    source_topic     text NOT NULL,
    source_partition int NOT NULL,
    source_offset    bigint NOT NULL,
    -- When claims read it: where the return stands among the holder's bank answers.
    waiting_since    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX waiting_returns_payment ON waiting_returns (payment_id);
CREATE INDEX waiting_returns_since ON waiting_returns (waiting_since);
