-- A device's replaced keys, each with the moment it was replaced (the new key's
-- registration time at the cards desk). A check-in signed with a replaced key still counts
-- if it reached the broker before that moment: it was sent before the rotation, and only
-- what a device has not sent yet is signed again with its new key (docs/device-protocol.md).
CREATE TABLE device_key_history (
    device_id     uuid        NOT NULL,
    key_id        int         NOT NULL,
    public_key    text        NOT NULL,
    superseded_at timestamptz NOT NULL,
    PRIMARY KEY (device_id, key_id)
);
