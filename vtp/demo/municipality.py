"""The demo municipality, after the source document: Heist-op-den-Berg's network partners,
municipal providers in the centre and associations in the sub-municipalities."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from schwifty import IBAN
from stdnum.be import nn

SUB_MUNICIPALITIES = (
    "Heist-Centrum",
    "Hallaar",
    "Booischot",
    "Itegem",
    "Wiekevorst",
    "Schriek",
    "Heist-Goor",
    "Zonderik",
)

# (name, kind, contact mailbox of the organisation — never a person's)
REFERRERS = (
    ("OCMW Heist-op-den-Berg", "ocmw", "sociale.dienst@ocmw-heist.example"),
    ("Welzijnsraad", "welfare_council", "welzijnsraad@heist.example"),
    ("vzw Den Draai", "association", "info@dendraai.example"),
    ("Outreachwerker Heist", "outreach", "outreach@heist.example"),
    ("Jeugdhulp Heist", "youth_care", "jeugdhulp@heist.example"),
)


@dataclass(frozen=True)
class DemoProvider:
    name: str
    sub_municipality: str
    mode: str
    activities: tuple[tuple[str, str, str, int], ...]  # (id, category, name, price_cents)


PROVIDERS = (
    DemoProvider(
        "Cultuurcentrum Zwaneberg",
        "Heist-Centrum",
        "refund",
        (
            ("zwaneberg-theater", "culture", "Theatervoorstelling", 1800),
            ("zwaneberg-film", "culture", "Filmavond", 700),
        ),
    ),
    DemoProvider(
        "Cursuscentrum",
        "Heist-Centrum",
        "refund",
        (
            ("cursus-koken", "course", "Kookcursus", 4500),
            ("cursus-digitaal", "course", "Digitale vaardigheden", 2500),
        ),
    ),
    DemoProvider(
        "Sportdienst",
        "Heist-Centrum",
        "refund",
        (
            ("sport-zwembad", "sport", "Zwembadbeurt", 350),
            ("sport-kamp", "sport", "Sportkamp", 6000),
        ),
    ),
    DemoProvider(
        "Jeugddienst",
        "Heist-Centrum",
        "till_discount",
        (("jeugd-speelpleinwerking", "youth", "Speelpleinwerking", 500),),
    ),
    DemoProvider(
        "Chiro Booischot",
        "Booischot",
        "till_discount",
        (("chiro-lidgeld", "membership", "Lidgeld", 4000),),
    ),
    DemoProvider("KWB Itegem", "Itegem", "refund", (("kwb-uitstap", "culture", "Uitstap", 2200),)),
    DemoProvider(
        "VC Hallaar",
        "Hallaar",
        "refund",
        (("vc-hallaar-training", "sport", "Voetbaltraining", 300),),
    ),
    DemoProvider(
        "Harmonie Wiekevorst",
        "Wiekevorst",
        "refund",
        (("harmonie-concert", "culture", "Concert", 1200),),
    ),
)

TARGET_GROUPS = (("poverty", 0.6), ("disability", 0.25), ("senior", 0.15))
FIRST_NAMES = ("An", "Bart", "Chloë", "Dries", "Emma", "Fatima", "Gert", "Hanne", "Ilias", "Jana")
LAST_NAMES = ("Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens")


def national_number(rng: random.Random, birth: date) -> str:
    serial = rng.randint(1, 997)
    base = f"{birth:%y%m%d}{serial:03d}"
    # Born from 2000 on, the check digits are computed with a leading 2.
    value = int(("2" if birth.year >= 2000 else "") + base)
    return base + f"{97 - value % 97:02d}"


def iban(rng: random.Random) -> str:
    return str(
        IBAN.generate("BE", bank_code="539", account_code=f"{rng.randint(0, 10**7 - 1):07d}")
    )


def identity_of(identity: random.Random) -> dict[str, str]:
    """A birth date and a national number that matches it. About 24 million are possible,
    so among 2,000 people two share one about once in twelve runs: the seeder redraws."""
    birth = date(identity.randint(1940, 2010), identity.randint(1, 12), identity.randint(1, 28))
    number = national_number(identity, birth)
    assert nn.is_valid(number), number
    return {"date_of_birth": birth.isoformat(), "national_number": number}


def person(
    rng: random.Random, referrer_org_id: str, index: int, identity: random.Random
) -> dict[str, object]:
    """A demo card holder. `identity` draws the birth date and national number apart from
    `rng`, so a second demo on the same stack registers new people with the same profile."""
    drawn = identity_of(identity)
    group = rng.choices([g for g, _ in TARGET_GROUPS], [w for _, w in TARGET_GROUPS])[0]
    channel = "letter" if index % 7 == 0 else "email"
    return {
        "first_name": rng.choice(FIRST_NAMES),
        "last_name": rng.choice(LAST_NAMES),
        **drawn,
        "iban": iban(rng),
        "email": f"kaarthouder{index}@example.org" if channel == "email" else None,
        "address": f"Kerkstraat {index}, 2220 Heist-op-den-Berg",
        "sub_municipality": rng.choice(SUB_MUNICIPALITIES),
        "resident": rng.random() > 0.05,
        "channel": channel,
        "language": "nl",
        "referrer_org_id": referrer_org_id,
        "_target_group": group,
    }
