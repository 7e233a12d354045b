"""A file given to the wrong flag: the error says what the file is not, and its fix never
deletes a file that may be the user's key."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bdfl.chain.accounts import load_key_file
from bdfl.chain.deploy import Deployment
from bdfl.errors import BDFLError

KEY = "0x" + "11" * 32


def test_a_key_file_given_as_the_deployment_is_not_to_be_deleted(tmp_path: Path) -> None:
    key = tmp_path / "peer0.key"
    key.write_text(KEY)
    with pytest.raises(BDFLError, match="is not valid JSON") as err:
        Deployment.load(key)
    assert "delete" not in err.value.fix and "--deployment" in err.value.fix


def test_a_json_file_that_is_no_keystore_asks_for_no_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BDFL_KEY_PASSWORD", raising=False)
    dep = tmp_path / "deployment.json"
    dep.write_text(json.dumps({"format": 1, "chainId": 31337, "addresses": {}}))
    with pytest.raises(BDFLError, match="not an encrypted keystore") as err:
        load_key_file(dep)
    assert "BDFL_KEY_PASSWORD" not in err.value.fix


def test_a_key_file_others_can_read_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = tmp_path / "peer0.key"
    key.write_text(KEY)
    key.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="bdfl.chain.accounts"):
        account = load_key_file(key)
    assert "chmod 600" in caplog.text and "0o644" in caplog.text and KEY[2:] not in caplog.text
    caplog.clear()
    key.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="bdfl.chain.accounts"):
        assert load_key_file(key).address == account.address
    assert caplog.text == ""
