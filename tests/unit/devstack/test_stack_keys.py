"""The dev stack makes the operations token with its other keys and hands it to clients."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from vtp.devstack.stack import OPERATIONS_TOKEN, load_or_create_keys, operations_token, read_keys


def test_a_new_state_folder_gets_an_operations_token(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)
    assert len(keys[OPERATIONS_TOKEN]) >= 32
    assert keys[OPERATIONS_TOKEN] != keys["api_token_secret"]
    assert operations_token(tmp_path) == keys[OPERATIONS_TOKEN]
    assert load_or_create_keys(tmp_path) == keys  # made once, then kept
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600


def test_an_older_state_folder_gets_one_added_and_keeps_its_keys(tmp_path: Path) -> None:
    old = {"cards_master": "ab" * 32, "api_token_secret": "cd" * 32, "finance_public": "x"}
    (tmp_path / "keys.json").write_text(json.dumps(old))
    keys = load_or_create_keys(tmp_path)
    assert {k: keys[k] for k in old} == old
    assert len(keys[OPERATIONS_TOKEN]) >= 32
    assert read_keys(tmp_path) == keys


def test_a_folder_without_a_stack_says_so(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"no stack keys in .*keys\.json"):
        operations_token(tmp_path)
    (tmp_path / "keys.json").write_text(json.dumps({"api_token_secret": "cd" * 32}))
    with pytest.raises(RuntimeError, match="no operations_token in"):
        operations_token(tmp_path)
