"""`vtp up` uses the databases the environment names and starts the embedded PostgreSQL only
for the services it names none for."""

from __future__ import annotations

from pathlib import Path

from vtp.devstack.stack import STACK_FILE, Stack, configured_dsns, without_password

SERVER = "postgresql://vtp:pw@db.example:5432/postgres?sslmode=require"


def test_nothing_configured_means_everything_embedded() -> None:
    assert configured_dsns({}) == {}


def test_one_server_gives_each_service_its_own_database_with_the_servers_options() -> None:
    assert configured_dsns({"DATABASE_URL": SERVER}) == {
        "cards": "postgresql://vtp:pw@db.example:5432/cards?sslmode=require",
        "claims": "postgresql://vtp:pw@db.example:5432/claims?sslmode=require",
        "notifications": "postgresql://vtp:pw@db.example:5432/notifications?sslmode=require",
    }


def test_a_services_own_url_counts_without_a_server_url() -> None:
    own = "postgresql://claims:pw@ledger.example/claims"
    assert configured_dsns({"CLAIMS_DATABASE_URL": own}) == {"claims": own}


def test_a_services_own_url_replaces_its_database_on_the_server() -> None:
    own = "postgresql://claims:pw@ledger.example/claims"
    dsns = configured_dsns(
        {"DATABASE_URL": SERVER, "CLAIMS_DATABASE_URL": own, "CARDS_DATABASE_URL": ""}
    )
    assert dsns["claims"] == own
    assert dsns["cards"] == "postgresql://vtp:pw@db.example:5432/cards?sslmode=require"


def test_a_servers_password_is_never_printed_or_left_in_the_state_file() -> None:
    assert without_password("postgresql://vtp:s3cr%40t@db.example:5432/claims?sslmode=require") == (
        "postgresql://vtp:***@db.example:5432/claims?sslmode=require"
    )
    embedded = "postgresql://postgres@127.0.0.1:5999/claims"
    assert without_password(embedded) == embedded


def test_the_state_file_has_no_password(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    stack.dsns = configured_dsns({"DATABASE_URL": "postgresql://vtp:s3cret@db.example/postgres"})
    stack.write_state()
    assert "s3cret" not in (tmp_path / STACK_FILE).read_text()
