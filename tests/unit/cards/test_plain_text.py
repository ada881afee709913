"""Free text typed at the desk is printable: a NUL (PostgreSQL refuses it in text columns)
or another control character is refused with the field's name, not a 500."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from services.cards.schemas import NewEligibility, NewPerson, PersonUpdate, WithReason
from shared.http_errors import field_errors

PERSON = {
    "first_name": "An",
    "last_name": "Peeters",
    "date_of_birth": date(1985, 7, 30),
    "national_number": "85073003328",
}


@pytest.mark.parametrize("control", ["\x00", "\x1b[31m", "\x7f"])
@pytest.mark.parametrize("field", ["first_name", "last_name", "sub_municipality"])
def test_a_control_character_in_a_name_is_refused_by_field(field: str, control: str) -> None:
    with pytest.raises(ValidationError) as refused:
        NewPerson.model_validate({**PERSON, field: f"Jan{control}"})
    [error] = field_errors(refused.value.errors())
    assert error["field"] == field
    assert "control character" in error["reason"]


def test_an_address_may_have_lines_but_no_nul() -> None:
    assert NewPerson.model_validate({**PERSON, "address": "Kerkstraat 1\n2220 Heist"}).address
    with pytest.raises(ValidationError, match="control character"):
        NewPerson.model_validate({**PERSON, "address": "Kerkstraat 1\x00"})


def test_reasons_and_evidence_are_plain_text() -> None:
    with pytest.raises(ValidationError, match="control character"):
        WithReason.model_validate({"reason": "lost\x00"})
    with pytest.raises(ValidationError, match="control character"):
        NewEligibility.model_validate(
            {
                "target_group": "poverty",
                "eligible_from": "2026-01-01",
                "eligible_until": "2026-12-31",
                "evidence_ref": "OCMW\x00-1",
            }
        )


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "Jan\x00", "Jan\nPeeters"])
@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_corrected_name_is_refused_as_at_registration(field: str, name: str) -> None:
    """PATCH /people/{id} takes the registration's name type: the same refusal, in the same
    words (a length said in characters, not pydantic's "items after validation")."""
    with pytest.raises(ValidationError) as at_registration:
        NewPerson.model_validate({**PERSON, field: name})
    with pytest.raises(ValidationError) as on_correction:
        PersonUpdate.model_validate({field: name})
    [registration] = field_errors(at_registration.value.errors())
    [correction] = field_errors(on_correction.value.errors())
    assert correction == registration
    assert "items" not in correction["reason"]
    assert not name or name not in correction["reason"]
    assert PersonUpdate.model_validate({field: "Jan-Pieter"}).model_dump(exclude_unset=True) == {
        field: "Jan-Pieter"
    }


def test_an_optional_text_too_long_is_said_in_characters() -> None:
    with pytest.raises(ValidationError) as refused:
        PersonUpdate.model_validate({"address": "x" * 301})
    assert field_errors(refused.value.errors()) == [
        {"field": "address", "reason": "String should have at most 300 characters"}
    ]


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_name_of_spaces_only_is_refused_and_spaces_around_one_dropped(field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        NewPerson.model_validate({**PERSON, field: "   "})
    [error] = field_errors(refused.value.errors())
    assert error == {"field": field, "reason": "is only spaces: type the name"}
    assert getattr(NewPerson.model_validate({**PERSON, field: "  Jan "}), field) == "Jan"
