-- Idempotency keys of the desk's creating requests (services/cards/api/idempotency.py): per
-- caller and key, the first request's fingerprint and its answer, for 24 hours. Nothing is
-- kept readable: the key and the request (whose body may be personal) as keyed hashes, the
-- answer (it may hold a device's private key or a bearer token) encrypted under a key that
-- only a request bearing the same Idempotency-Key can derive.
CREATE TABLE idempotency_keys (
    caller        text        NOT NULL,  -- the API token's id, or the bootstrap administrator
    key_hash      bytea       NOT NULL,
    request_hash  bytea       NOT NULL,  -- method, path and body
    status        smallint,              -- NULL only inside the claiming transaction
    response      bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Two requests with one key: the second waits here for the first, then replays it.
    PRIMARY KEY (caller, key_hash)
);
-- The daily job forgets keys older than 24 hours.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
