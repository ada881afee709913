-- No query reads claims by holder over all outcomes any more: the frequency limits use
-- claims_holder_live (since 0003), payment runs claims_unpaid. The full index only cost
-- every claim one more index insert.
DROP INDEX IF EXISTS claims_holder;
