"""Money is integer euro cents everywhere; these helpers only format and split it."""

from __future__ import annotations


def format_eur(amount_cents: int) -> str:
    """Belgian notation: `€ 12,50`, thousands with a dot: `€ 1.234,05`, negatives `-€ 3,00`."""
    sign = "-" if amount_cents < 0 else ""
    euros, cents = divmod(abs(amount_cents), 100)
    grouped = f"{euros:,}".replace(",", ".")
    return f"{sign}€ {grouped},{cents:02d}"


def percent_of(amount_cents: int, basis_points: int) -> int:
    """`basis_points`/10_000 of an amount, rounded half up to a whole cent (never float)."""
    if amount_cents < 0 or basis_points < 0:
        raise ValueError("amounts and percentages are non-negative")
    return (amount_cents * basis_points + 5_000) // 10_000
