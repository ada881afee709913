CREATE TABLE organisations (
    organisation_id uuid PRIMARY KEY,
    name            text NOT NULL,
    kind            text NOT NULL,
    contact_email   text,
    webhook_url     text,
    sub_municipality text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE providers (
    provider_id      uuid PRIMARY KEY,
    organisation_id  uuid REFERENCES organisations,
    name             text NOT NULL,
    sub_municipality text NOT NULL,
    mode             text NOT NULL CHECK (mode IN ('refund', 'till_discount')),
    partner          boolean NOT NULL DEFAULT true,
    contact_email    text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    device_id   uuid PRIMARY KEY,
    provider_id uuid NOT NULL REFERENCES providers,
    public_key  text NOT NULL,
    key_id      int  NOT NULL DEFAULT 1,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- People: everything personal sits in `sealed_data`, encrypted with the person's own key.
-- Deleting `data_key` (erasure) makes it unreadable while the opaque person id lives on.
CREATE TABLE people (
    person_id        uuid PRIMARY KEY,
    referrer_org_id  uuid NOT NULL REFERENCES organisations,
    data_key         bytea,
    sealed_data      bytea,
    national_number_hash text UNIQUE,
    sub_municipality text,
    resident         boolean NOT NULL DEFAULT true,
    channel          text NOT NULL DEFAULT 'email',
    language         text NOT NULL DEFAULT 'nl',
    erased_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE eligibilities (
    eligibility_id  uuid PRIMARY KEY,
    person_id       uuid NOT NULL REFERENCES people,
    target_group    text NOT NULL,
    eligible_from   date NOT NULL,
    eligible_until  date NOT NULL,
    grace_days      int  NOT NULL DEFAULT 0,
    evidence_ref    text,
    granted_by      uuid NOT NULL REFERENCES organisations,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (eligible_until >= eligible_from)
);

CREATE TABLE cards (
    card_id     uuid PRIMARY KEY,
    card_number text NOT NULL UNIQUE,
    person_id   uuid NOT NULL REFERENCES people,
    status      text NOT NULL CHECK (status IN ('active','blocked','replaced','expired','revoked')),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    replaces_card_id uuid REFERENCES cards
);
-- At most one active card per person, whatever the races.
CREATE UNIQUE INDEX one_active_card_per_person ON cards (person_id) WHERE status = 'active';
