-- A cancellation's reason is a code now (shared/events/checkins.py: CancellationReason;
-- ClaimReversed carries it as a ReversalReason of the same value). Text a provider typed
-- before ("klant was ziek") could name a card holder: whatever is not a code becomes
-- 'other', so it is neither kept here nor, for a parked cancellation, published in the
-- detail of the check-in's rejection when it arrives.
UPDATE pending_cancellations SET reason = 'other'
WHERE reason NOT IN ('activity_cancelled', 'scanned_in_error', 'scanned_twice',
                     'did_not_attend', 'refunded_at_till', 'other');
UPDATE claims SET reversal_reason = 'other'
WHERE reversal_reason NOT IN ('activity_cancelled', 'scanned_in_error', 'scanned_twice',
                              'did_not_attend', 'refunded_at_till', 'other');
UPDATE claims SET detail = 'cancelled by the provider: other'
WHERE reason = 'checkin_cancelled' AND detail NOT IN (
    'cancelled by the provider: activity_cancelled', 'cancelled by the provider: scanned_in_error',
    'cancelled by the provider: scanned_twice', 'cancelled by the provider: did_not_attend',
    'cancelled by the provider: refunded_at_till', 'cancelled by the provider: other');
