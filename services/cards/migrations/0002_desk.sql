-- API tokens: only a SHA-256 of each token is kept; the token itself is shown once.
CREATE TABLE api_tokens (
    token_id        uuid PRIMARY KEY,
    token_hash      text NOT NULL UNIQUE,
    label           text NOT NULL,
    role            text NOT NULL CHECK (role IN
                        ('program_admin', 'referrer', 'provider_admin', 'finance', 'operator')),
    organisation_id uuid REFERENCES organisations,
    provider_id     uuid REFERENCES providers,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    -- A referrer acts for one organisation, a provider administrator for one provider.
    CHECK (role <> 'referrer' OR organisation_id IS NOT NULL),
    CHECK (role <> 'provider_admin' OR provider_id IS NOT NULL)
);

-- Who did what, when and why. Subjects are opaque ids: the log holds no personal data.
CREATE TABLE audit_log (
    audit_id        bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor_token_id  uuid,
    actor_label     text NOT NULL,
    actor_role      text NOT NULL,
    actor_org_id    uuid,
    action          text NOT NULL,
    subject_type    text NOT NULL,
    subject_id      text NOT NULL,
    reason          text,
    correlation_id  text
);
CREATE INDEX audit_log_subject ON audit_log (subject_id, at);

-- A provider's bank account is kept only sealed for finance: cards never reads it back.
ALTER TABLE providers ADD COLUMN beneficiary_sealed text;
ALTER TABLE providers ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE activities (
    provider_id  uuid NOT NULL REFERENCES providers,
    activity_id  text NOT NULL,
    name         text NOT NULL,
    category     text NOT NULL
                 CHECK (category IN ('culture', 'sport', 'youth', 'course', 'membership')),
    price_cents  int CHECK (price_cents >= 0),
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_id, activity_id)
);

ALTER TABLE devices ADD COLUMN revoke_reason text;

ALTER TABLE eligibilities ADD COLUMN extended_at timestamptz;

ALTER TABLE cards ADD COLUMN status_reason text;
ALTER TABLE cards ADD COLUMN status_changed_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX cards_person ON cards (person_id);

-- The daily job announces an ending eligibility once per end date, however often it runs.
CREATE TABLE ending_announcements (
    eligibility_id  uuid NOT NULL REFERENCES eligibilities,
    eligible_until  date NOT NULL,
    announced_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (eligibility_id, eligible_until)
);
