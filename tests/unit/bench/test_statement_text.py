from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vtp.bench.statements import one_line


def test_a_statement_is_shown_on_one_line() -> None:
    query = """
        WITH added AS (
            INSERT INTO outbox (event_id)\tSELECT * FROM unnest($1::uuid[])
        )
        SELECT pg_notify($2, '')
    """
    assert one_line(query) == (
        "WITH added AS ( INSERT INTO outbox (event_id) SELECT * FROM unnest($1::uuid[]) )"
        " SELECT pg_notify($2, '')"
    )


def test_a_long_statement_is_cut_with_an_ellipsis() -> None:
    assert one_line("SELECT " + "x, " * 100, width=20) == "SELECT x, x, x, x, …"


@given(st.text(), st.integers(min_value=2, max_value=200))
def test_never_wider_than_asked_and_never_two_spaces(query: str, width: int) -> None:
    line = one_line(query, width)
    assert len(line) <= width
    assert "  " not in line
    assert "\n" not in line
    assert line == line.strip()
