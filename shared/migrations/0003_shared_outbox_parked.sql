-- A record the broker will never take as it is (larger than it accepts) used to be offered
-- again on every pass, and every row after it waited behind it: the service published
-- nothing more. Such a row is now parked, with the reason, and the relay goes on. The
-- operator sees it in the log ("outbox record parked") and in /health/ready, removes the
-- cause (e.g. raises the broker's limit) and releases it by clearing parked_at.
ALTER TABLE outbox ADD COLUMN parked_at timestamptz, ADD COLUMN parked_reason text;
CREATE INDEX outbox_parked ON outbox (seq) WHERE parked_at IS NOT NULL;
