-- Published rows used to stay an hour (marked published_at), each publish rewriting the
-- whole row: at 2,000 events a second that is ~7 million rows and ~1.3 KB of WAL per event.
-- Now a published row is deleted, except when its event id is derived from its content
-- (dead letters): such a row is kept, marked, for the retention period, so that the same
-- poison message replayed after a crash finds it and is not dead-lettered twice.
ALTER TABLE outbox ADD COLUMN retain boolean NOT NULL DEFAULT false;
