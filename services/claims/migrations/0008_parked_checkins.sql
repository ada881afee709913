-- Check-ins from a device claims does not know yet: its DeviceRegistered travels on another
-- topic, through another consumer, and can come later than the device's first scans. Such
-- a check-in used to be dead-lettered as unknown_device while the inbox kept its id, so it
-- could neither be redriven nor sent again: no outcome, ever. It is parked here instead,
-- as it came (key, headers, body), and applying the device's DeviceRegistered puts it back
-- on the check-in topic (services/claims/parking.py). A row that stays here is a device
-- claims never heard of: GET /checkins/parked counts them.
CREATE TABLE parked_checkins (
    event_id         uuid PRIMARY KEY,
    checkin_id       uuid NOT NULL,
    device_id        uuid NOT NULL,
    correlation_id   text NOT NULL,
    key              bytea NOT NULL,
    -- [[name, value as latin-1], ...] as JSON bytes: any header byte survives (jsonb
    -- refuses NUL).
    headers          bytea NOT NULL,
    payload          bytea NOT NULL,
    source_topic     text NOT NULL,
    source_partition int NOT NULL,
    source_offset    bigint NOT NULL,
    parked_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_checkins_device ON parked_checkins (device_id);
