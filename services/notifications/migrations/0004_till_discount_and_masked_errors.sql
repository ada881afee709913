-- Whether a decided check-in's discount was given at the till (the provider is reimbursed,
-- the card holder is paid nothing): its cancellation then lapses a discount, not a refund.
-- Check-ins recorded before this column count as refunds, which is what they were told.
ALTER TABLE checkins ADD COLUMN till_discount boolean NOT NULL DEFAULT false;

-- Failure texts stored before they were masked (GET /deliveries lists them) may quote a
-- holder's address or a partner's webhook URL. Masked once as outcomes.without_addresses
-- does: URLs first (\y is PostgreSQL's \b), then addresses, with the same patterns. Those
-- texts were cut at 300 characters before anything was masked, so an address cut in half
-- at the end (no dot left after the '@') is masked too.
UPDATE deliveries
SET last_error = regexp_replace(
        regexp_replace(
            regexp_replace(last_error, '\yhttps?://\S+', '<url>', 'gi'),
            '[\w.+-]+@[\w-]+(\.[\w-]+)+', '<address>', 'g'),
        '[\w.+-]+@[\w.-]*$', '<address>')
WHERE last_error LIKE '%@%' OR last_error LIKE '%://%';
