"""A check-in batch's outcomes reach the metrics as the batch wrote them: per outcome and
reason, the cents approved and the parked, tallied from the columns of the claims row."""

from __future__ import annotations

import re
import uuid
from typing import Any

from services.claims.checkins import _DECIDED, _count, _store, _Writes
from shared.metrics import ServiceMetrics

_CLAIM_COLUMNS = [
    name.strip()
    for name in re.search(r"INSERT INTO claims \(([^)]*)\)", _DECIDED).group(1).split(",")  # type: ignore[union-attr]
]


def _claim(outcome: str, reason: str | None, amount_cents: int) -> tuple[Any, ...]:
    row: dict[str, Any] = dict.fromkeys(_CLAIM_COLUMNS)
    row.update(claim_id=uuid.uuid4(), outcome=outcome, reason=reason, amount_cents=amount_cents)
    return tuple(row[name] for name in _CLAIM_COLUMNS)


class RecordingConnection:
    def __init__(self) -> None:
        self.statements = 0

    async def execute(self, _sql: str, *_args: Any) -> str:
        self.statements += 1
        return "INSERT 0 1"

    async def executemany(self, _sql: str, _rows: Any) -> None:
        self.statements += 1


def _sample(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_a_batch_is_counted_by_outcome_and_reason_with_the_cents_approved() -> None:
    writes = _Writes()
    writes.claims = [
        *[_claim("approved", None, 450)] * 3,
        _claim("capped", None, 120),
        *[_claim("rejected", "budget_exhausted", 0)] * 2,
        _claim("rejected", "card_blocked", 0),
    ]
    writes.nonces = [(uuid.uuid4(), "n", uuid.uuid4())] * len(writes.claims)
    writes.unauthenticated = [(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "bad_signature", "x")]
    await _store(RecordingConnection(), writes)  # type: ignore[arg-type]
    metrics = ServiceMetrics()

    _count(metrics.checkin_outcomes(), writes)

    def outcomes(outcome: str, reason: str = "") -> float | None:
        return _sample(metrics, "vtp_checkin_outcomes_total", outcome=outcome, reason=reason)

    assert outcomes("approved") == 3
    assert outcomes("capped") == 1
    assert outcomes("rejected", "budget_exhausted") == 2
    assert outcomes("rejected", "card_blocked") == 1
    assert outcomes("not_authenticated", "bad_signature") == 1
    assert _sample(metrics, "vtp_checkin_approved_cents_total") == 3 * 450 + 120
    assert _sample(metrics, "vtp_checkins_parked_total", waiting_for="device") == 0


async def test_a_batch_of_only_parked_and_unauthenticated_check_ins_counts_no_claims() -> None:
    writes = _Writes()
    writes.unauthenticated = [
        (uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "replayed", "x"),
        (uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "replayed", "x"),
    ]
    writes.awaiting_card = [object()] * 2  # type: ignore[list-item]
    metrics = ServiceMetrics()

    _count(metrics.checkin_outcomes(), writes)

    assert (
        _sample(
            metrics, "vtp_checkin_outcomes_total", outcome="not_authenticated", reason="replayed"
        )
        == 2
    )
    assert _sample(metrics, "vtp_checkin_outcomes_total", outcome="approved", reason="") is None
    assert _sample(metrics, "vtp_checkins_parked_total", waiting_for="card") == 2
    assert _sample(metrics, "vtp_checkin_approved_cents_total") == 0
