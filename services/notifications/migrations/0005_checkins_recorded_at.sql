-- When this service recorded a decided check-in. Provider statements select by it, not by
-- occurred_at: a device may flush a check-in up to 30 days late and it is still decided, so
-- one of 31 May that arrives on 2 June missed May's statement (run on 1 June) and, selected
-- by occurred_at, June's as well. By arrival, every check-in lands in exactly one statement.
--
-- clock_timestamp(), not now(): the moment of the insert, not the start of its transaction.
-- The statement job locks the table against writers once its period is over (jobs.py), so a
-- row inserted before that lock is committed (or gone) when it reads, and a row inserted
-- after it carries a later time: no transaction that began before midnight can still add a
-- row to a period whose statement went out.
--
-- Check-ins recorded before this migration were reported by occurred_at: they keep it as
-- their recorded_at, so that none of them is reported a second time.
ALTER TABLE checkins ADD COLUMN recorded_at timestamptz;
UPDATE checkins SET recorded_at = occurred_at;
ALTER TABLE checkins
    ALTER COLUMN recorded_at SET DEFAULT clock_timestamp(),
    ALTER COLUMN recorded_at SET NOT NULL;
-- Rows arrive in time order: a BRIN index finds a month for next to no upkeep on the
-- insert path.
CREATE INDEX checkins_by_recorded_at ON checkins USING brin (recorded_at);
