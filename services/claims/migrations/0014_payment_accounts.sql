-- The account a payment went to (sealed for finance, as the cards desk sent it): a payment
-- the bank refused for the account's sake (AC04 closed, AC01 wrong, ...) is not tried again
-- to that same account; the holder's refunds are held until the desk records another
-- (services/claims/payments.py). Payments from before have none: never held for it.
ALTER TABLE payments ADD COLUMN beneficiary_sealed text;
ALTER TABLE held_refunds ADD COLUMN reason text NOT NULL DEFAULT 'no_account';
