"""A payment request as claims publishes it, for finance's tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.events.claims import PayeeKind
from shared.events.payments import PaymentRequested


def payment_requested(
    payment_id: uuid.UUID | None = None,
    payee_kind: PayeeKind = PayeeKind.CARD_HOLDER,
    payee_id: uuid.UUID | None = None,
) -> PaymentRequested:
    return PaymentRequested(
        payment_id=payment_id or uuid.uuid4(),
        run_id=uuid.uuid4(),
        payee_kind=payee_kind,
        payee_id=payee_id or uuid.uuid4(),
        amount_cents=1250,
        structured_reference="+++000/0000/00197+++",
        remittance_info="Vrijetijdspas terugbetaling 1 activiteit(en) +++000/0000/00197+++",
        claims=1,
        requested_at=datetime.now(UTC),
    )
