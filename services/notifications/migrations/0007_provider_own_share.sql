-- A provider's own share of an approved check-in's discount (the distribution key): a
-- provider in till-discount mode is paid the discounts it gave less its share (claims nets
-- the two), and its statement says so. Check-ins recorded before this column had none told.
ALTER TABLE checkins ADD COLUMN own_share_cents bigint NOT NULL DEFAULT 0;
