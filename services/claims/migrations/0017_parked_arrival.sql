-- When a parked check-in reached us (the broker's time, as the check-in handler counts it),
-- and, for each copy put back on the check-in topic, that time again: the copy is judged
-- against it, not against when the copy reached the broker (services/claims/parking.py).
-- Rows parked before this migration have only their parked_at, a little later than their
-- arrival: the nearest we know.
ALTER TABLE parked_checkins ADD COLUMN arrived_at timestamptz;
UPDATE parked_checkins SET arrived_at = parked_at;
ALTER TABLE parked_checkins ALTER COLUMN arrived_at SET NOT NULL;

-- One row per copy put back and not judged yet. record_key is the inbox key of the copy
-- (its event id and body together, shared/inbox.py): a record that only names itself a copy
-- (any device may write to the check-in topic) finds no row, and is judged against when it
-- reached the broker.
CREATE TABLE released_checkins (
    record_key  uuid PRIMARY KEY,
    arrived_at  timestamptz NOT NULL,
    released_at timestamptz NOT NULL DEFAULT now()
);
