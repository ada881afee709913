-- A provider's mode (refund or discount at the till) and partnership, as they were from
-- when: a check-in is judged by the terms in force when it happened, not by the provider's
-- current ones. A device may send a check-in days late; if the provider switched from
-- refund to till discount meanwhile, the holder paid the full price and is the one to be
-- refunded (and the other way round, the provider gave the discount and is reimbursed).
-- Each ProviderRegistered adds the terms from its event time; `providers` keeps the rest.
CREATE TABLE provider_terms (
    provider_id   uuid NOT NULL,
    effective_at  timestamptz NOT NULL,
    mode          text NOT NULL,
    partner       boolean NOT NULL,
    PRIMARY KEY (provider_id, effective_at)
);
-- Today's terms for the providers known before: from the epoch (a provider's earliest
-- terms also hold for check-ins before them, so the exact start does not matter).
INSERT INTO provider_terms (provider_id, effective_at, mode, partner)
SELECT provider_id, to_timestamp(0), mode, partner FROM providers;
