-- The relay forgets retained rows (dead letters' derived ids) once their retention is
-- over. Without an index that DELETE read the whole outbox table, dead rows included: up
-- to ~100 ms behind a busy hour, while the relay published nothing. The rows it is after
-- are few (published and retained), so a partial index holds only those.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
