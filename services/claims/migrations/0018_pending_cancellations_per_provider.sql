-- A parked cancellation (one that overtook its check-in) is kept per (check-in, provider):
-- it applies only to a check-in of its own provider (services/claims/checkins.py), and one
-- of another provider, parked first, no longer keeps the real one out (it did, by
-- ON CONFLICT (checkin_id) DO NOTHING). A row without a provider (parked before 0003) never
-- applied to any check-in: it goes.
DELETE FROM pending_cancellations WHERE provider_id IS NULL;
ALTER TABLE pending_cancellations DROP CONSTRAINT pending_cancellations_pkey;
ALTER TABLE pending_cancellations ALTER COLUMN provider_id SET NOT NULL;
ALTER TABLE pending_cancellations ADD PRIMARY KEY (checkin_id, provider_id);
