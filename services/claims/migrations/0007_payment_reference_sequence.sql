-- Payment references (the 10 digits of a structured OGM/VCS reference) are numbered from
-- a sequence instead of drawn at random: random ones collided (a 12% chance within 50,000
-- payments) and one collision, a unique violation, rolled back a whole payment run.
-- References drawn at random before this migration stay taken: a run skips such a number.
CREATE SEQUENCE payment_reference_numbers AS bigint MINVALUE 1 MAXVALUE 9999999999 NO CYCLE;
