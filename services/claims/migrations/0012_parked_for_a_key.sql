-- A check-in can also wait for its device's new key: a device that rotated its key signs
-- with the new one at once, and the new key's DeviceRegistered (another topic, another
-- consumer) may reach claims after the check-in. 0: waiting for the device itself.
ALTER TABLE parked_checkins ADD COLUMN awaiting_key_id int NOT NULL DEFAULT 0;
