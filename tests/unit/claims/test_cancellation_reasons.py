"""A reversal says why with the code its provider picked when cancelling the check-in."""

from __future__ import annotations

import pytest

from services.claims.cancellations import reversal_reason
from shared.events.checkins import CancellationReason
from shared.events.claims import ReversalReason


@pytest.mark.parametrize("code", list(CancellationReason))
def test_a_cancellation_code_becomes_the_same_reversal_code(code: CancellationReason) -> None:
    reason = reversal_reason(code)
    assert isinstance(reason, ReversalReason)
    assert reason.value == code.value
