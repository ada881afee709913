-- A check-in can also wait for its card: the card's CardIssued travels on another topic
-- (cards.card-issued.v1, through the card-projection consumer) and can reach claims after
-- a check-in with the card (a new card used at once, or the check-in backlog caught up
-- first after an outage). Rejected as unknown_card, such a check-in was lost for good: the
-- inbox kept its event id. The card number it waits for (null: it waits for its device or
-- a key of it, awaiting_key_id); applying that card's CardIssued puts it back on the
-- check-in topic (services/claims/parking.py).
ALTER TABLE parked_checkins ADD COLUMN awaiting_card text;
CREATE INDEX parked_checkins_card ON parked_checkins (awaiting_card)
    WHERE awaiting_card IS NOT NULL;

-- A copy put back because its wait is over (its card never came) rather than because what
-- it waited for came: the handler judges it as it is (unknown_card) and never parks it
-- again.
ALTER TABLE released_checkins ADD COLUMN wait_over boolean NOT NULL DEFAULT false;
