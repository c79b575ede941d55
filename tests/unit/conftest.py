"""Fixtures the unit tests share."""

import pytest


@pytest.fixture
def inventories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "inventories"
    directory.mkdir()
    # Not a key: validation compares id_test.pub beside it with server.authorized_keys.
    (directory / "id_test").write_text("not a key\n")
    (directory / "id_test.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDuptqmDfSXBQUmUGJh operator@laptop\n")
    return directory
