-- Whether a device's clock is off, as its accepted heartbeats' signed clock_offset_ms say
-- (signals.judge_clock), so that its provider hears it once per episode
-- (device_clock_off). Both are reference times: a heartbeat's signed sent_at less its
-- signed offset, when it was sent by the clock the device measured against.
-- clock_judged_at is that of the latest heartbeat that judged the clock (an older one, a
-- copy or a late one, changes nothing); clock_off_since that of the heartbeat that began
-- the episode in progress, NULL when the clock is right (or never said to be off).
ALTER TABLE devices
    ADD COLUMN clock_judged_at timestamptz,
    ADD COLUMN clock_off_since timestamptz;
