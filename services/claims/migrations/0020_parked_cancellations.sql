-- A cancellation can wait too: signed by a device claims has not heard of yet (registered
-- and used at once), or with a key of it not heard of yet (a rotation), it was
-- dead-lettered as unknown_device / bad_signature while the inbox kept its event id: the
-- holder kept the refund of an activity that did not take place. It waits here, as a
-- check-in does for the same things (same columns: the record as it came, its device, the
-- key it says signed it, when it reached us), and is put back on the cancellation topic
-- when its device or key registration is applied (services/claims/parking.py). `checkin_id`
-- is the check-in it cancels; it never waits for a card (awaiting_card stays null).
ALTER TABLE parked_checkins ADD COLUMN kind text NOT NULL DEFAULT 'checkin'
    CHECK (kind IN ('checkin', 'cancellation'));
ALTER TABLE parked_checkins ADD CONSTRAINT parked_checkins_card_for_checkins
    CHECK (kind = 'checkin' OR awaiting_card IS NULL);
-- Per kind: a device picks its records' ids, and a cancellation that reuses its check-in's
-- id must not keep that check-in from being parked (or the other way round).
ALTER TABLE parked_checkins DROP CONSTRAINT parked_checkins_pkey;
ALTER TABLE parked_checkins ADD PRIMARY KEY (event_id, kind);
