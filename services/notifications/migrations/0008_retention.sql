-- Retention (jobs.py, "retention"): a delivery that is over (sent, sent in a digest, dead or
-- skipped) keeps its address, subject, body and payload for NOTIFICATIONS_RETENTION_DAYS
-- (180) after it was queued, then only what the delivery log counts: ids, kind, recipient
-- key, channel, status, attempts, the (masked) error and the times. redacted_at says when.
ALTER TABLE deliveries ADD COLUMN redacted_at timestamptz;
-- What the daily job still has to blank, oldest first: the rows of the retention period.
CREATE INDEX deliveries_to_redact ON deliveries (created_at)
    WHERE redacted_at IS NULL AND status IN ('sent', 'batched', 'dead', 'skipped');
-- device_days is pruned by day after the same period.
CREATE INDEX device_days_by_day ON device_days (day);
