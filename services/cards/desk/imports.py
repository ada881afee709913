"""Bulk import of card holders from a referrer's CSV list. Each row is its own transaction:
a bad row is reported (line, field, reason) and the good rows are imported."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
from pydantic import ValidationError

from services.cards.desk.cards import issue_card
from services.cards.desk.people import grant_eligibility, register_person
from services.cards.desk.unit import Desk, unit_of_work
from services.cards.domain.access import Principal
from services.cards.domain.csv_rows import CsvRow, read_rows, truthy
from services.cards.domain.errors import Refused
from services.cards.schemas import NewEligibility, NewPerson
from shared.http_errors import field_errors
from shared.logging import get_logger

log = get_logger(__name__)

_ELIGIBILITY_FIELDS = (
    "target_group",
    "eligible_from",
    "eligible_until",
    "grace_days",
    "evidence_ref",
)


@dataclass
class ImportReport:
    imported: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "imported_count": len(self.imported),
            "rejected_count": len(self.rejected),
            "imported": self.imported,
            "rejected": self.rejected,
        }


def _parse(row: CsvRow) -> tuple[NewPerson, NewEligibility]:
    values: dict[str, Any] = dict(row.values)
    eligibility = {k: values.pop(k) for k in _ELIGIBILITY_FIELDS if k in values}
    values.pop("issue_card", None)
    if "resident" in values:
        values["resident"] = truthy(values["resident"], True)
    return NewPerson.model_validate(values), NewEligibility.model_validate(eligibility)


async def import_people(
    pool: asyncpg.Pool,
    desk: Desk,
    principal: Principal,
    text: str,
    today: date,
    correlation_id: str | None,
) -> ImportReport:
    report = ImportReport()
    for row in read_rows(text):
        if row.problem is not None:
            report.rejected.append(
                {"line": row.line, "errors": [{"field": "csv", "reason": row.problem}]}
            )
            continue
        try:
            person, grant = _parse(row)
            async with unit_of_work(pool, desk, principal, correlation_id, "csv import") as unit:
                person_id = await register_person(unit, person, today)
                await grant_eligibility(unit, person_id, grant, today)
                card = (
                    await issue_card(unit, person_id, today)
                    if truthy(row.values.get("issue_card"), True)
                    else None
                )
        except ValidationError as exc:
            report.rejected.append({"line": row.line, "errors": field_errors(exc.errors())})
            continue
        except Refused as exc:
            report.rejected.append({"line": row.line, "errors": [exc.as_error()]})
            continue
        except Exception:
            # The rows before this one are imported and the rows after it are still tried: a
            # report that names this line is worth more than a 500 that names none.
            log.exception("csv import line failed", line=row.line)
            report.rejected.append(
                {
                    "line": row.line,
                    "errors": [
                        {
                            "field": "line",
                            "reason": "could not be stored (an internal error, logged);"
                            " import this line again later",
                        }
                    ],
                }
            )
            continue
        report.imported.append(
            {
                "line": row.line,
                "person_id": str(person_id),
                "card_id": str(card.card_id) if card else None,
                "card_number": card.card_number if card else None,
            }
        )
    return report
