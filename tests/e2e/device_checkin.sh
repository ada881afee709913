#!/usr/bin/env bash
# A check-in device written from docs/device-protocol.md alone: openssl signs, kcat sends.
# No Python. Prints the check-in id on stdout.
#
# Environment: BOOTSTRAP, DEVICE_ID, PROVIDER_ID, PRIVATE_KEY (base64 raw Ed25519 seed, as the
# cards API returns it), CARD, ACTIVITY_ID, CATEGORY, ACTIVITY_NAME, PRICE_CENTS, COUNTER.
set -euo pipefail
for var in BOOTSTRAP DEVICE_ID PROVIDER_ID PRIVATE_KEY CARD ACTIVITY_ID CATEGORY ACTIVITY_NAME PRICE_CENTS COUNTER; do
  : "${!var:?$var is required}"
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Section 1: PKCS#8 DER = the fixed Ed25519 prefix followed by the 32 seed bytes.
printf '\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20' > "$work/key.der"
printf '%s' "$PRIVATE_KEY" | openssl base64 -d -A >> "$work/key.der"
openssl pkey -inform DER -in "$work/key.der" -out "$work/key.pem"

checkin_id=$(cat /proc/sys/kernel/random/uuid)
event_id=$(cat /proc/sys/kernel/random/uuid)
nonce=$(openssl rand -hex 16)
occurred_at=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)

# Section 5: eleven values joined by \n, no trailing newline.
printf 'vtp-checkin-v1\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s' \
  "$checkin_id" "$DEVICE_ID" "$PROVIDER_ID" "$ACTIVITY_ID" "$CATEGORY" "$CARD" \
  "$PRICE_CENTS" "$occurred_at" "$COUNTER" "$nonce" > "$work/canonical.bin"
signature=$(openssl pkeyutl -sign -rawin -inkey "$work/key.pem" -in "$work/canonical.bin" | openssl base64 -A)

# Section 4: the JSON body.
body=$(printf '{"checkin_id":"%s","device_id":"%s","provider_id":"%s","activity":{"id":"%s","category":"%s","name":"%s"},"card_number":"%s","price_cents":%s,"occurred_at":"%s","counter":%s,"nonce":"%s","signature":"%s"}' \
  "$checkin_id" "$DEVICE_ID" "$PROVIDER_ID" "$ACTIVITY_ID" "$CATEGORY" "$ACTIVITY_NAME" "$CARD" \
  "$PRICE_CENTS" "$occurred_at" "$COUNTER" "$nonce" "$signature")

# Sections 2 and 3: topic, key and CloudEvents headers. kcat first; when it cannot talk to
# the broker and KAFKAJS_DIR holds kafkajs, the same record goes out through node.
headers=(
  "ce_specversion=1.0"
  "ce_id=$event_id"
  "ce_type=be.vrijetijdspas.checkins.CheckInRecorded"
  "ce_source=/vrijetijdspas/devices/$DEVICE_ID"
  "ce_time=$(date -u +%Y-%m-%dT%H:%M:%S.%3N+00:00)"
  "ce_subject=$checkin_id"
  "content-type=application/json"
)
kcat_headers=()
for h in "${headers[@]}"; do kcat_headers+=(-H "$h"); done
if printf '%s' "$body" | kcat -P -b "$BOOTSTRAP" -t checkins.checkin-recorded.v1 -k "$CARD" \
    -X request.required.acks=all -X message.timeout.ms=15000 "${kcat_headers[@]}" 2> "$work/kcat.err" \
    && ! grep -q ERROR "$work/kcat.err"; then
  echo "sent with kcat" >&2
elif [ -n "${KAFKAJS_DIR:-}" ] && [ -d "$KAFKAJS_DIR/node_modules/kafkajs" ]; then
  echo "kcat failed ($(grep -m1 ERROR "$work/kcat.err")); sending with node + kafkajs" >&2
  printf '%s' "$body" | NODE_PATH="$KAFKAJS_DIR/node_modules" \
    node "$(dirname "$0")/device_send.js" "$BOOTSTRAP" checkins.checkin-recorded.v1 "$CARD" "${headers[@]}"
else
  cat "$work/kcat.err" >&2
  exit 1
fi
echo "$checkin_id"
