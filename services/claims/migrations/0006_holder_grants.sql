-- Every grant of a holder, not only the one that reaches furthest: a check-in is judged by
-- the grant in force on its own day, so an early renewal or a new target group never
-- reaches back over check-ins (late ones included) from before it started. A holder with
-- no rows here (data from before this table) is judged by its card row's grant.
CREATE TABLE holder_grants (
    holder_id      uuid NOT NULL,
    target_group   text NOT NULL,
    eligible_from  date NOT NULL,
    eligible_until date NOT NULL,
    grace_days     int  NOT NULL,
    PRIMARY KEY (holder_id, eligible_from, target_group, eligible_until, grace_days)
);

-- The changed_at of the EligibilityChanged the grants above come from: an older one that
-- arrives later (a redelivery, another relay's order) changes nothing.
ALTER TABLE holders ADD COLUMN grants_changed_at timestamptz;
