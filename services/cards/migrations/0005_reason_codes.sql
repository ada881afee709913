-- A card's or device's reason is a code now (shared/events/cards.py: CardStatusReason,
-- DeviceRevocationReason), the one its event carries; what a person typed beside it is a
-- note that never leaves this database (and a card's is blanked when its holder is erased).
-- The free text kept so far is that note. No deployment held data before this migration.
ALTER TABLE cards RENAME COLUMN status_reason TO status_note;
ALTER TABLE cards ADD COLUMN status_reason text;
ALTER TABLE devices RENAME COLUMN revoke_reason TO revoke_note;
ALTER TABLE devices ADD COLUMN revoke_reason text;
