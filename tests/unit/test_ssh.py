"""Known-hosts bookkeeping: the pure parts of host-key verification."""

import base64

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fabfile import ssh


def new_key() -> paramiko.PKey:
    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    key_type, body = public.split()
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(body))


@pytest.mark.parametrize("address, port, name", [
    ("example.com", 22, "example.com"),
    ("127.0.0.1", 2222, "[127.0.0.1]:2222"),
])
def test_known_hosts_name_follows_openssh(address, port, name):
    assert ssh.known_hosts_name(address, port) == name


def test_known_hosts_with_replaces_only_that_hosts_entries():
    old, new, other = new_key(), new_key(), new_key()
    hashed = paramiko.HostKeys.hash_host("[127.0.0.1]:2222")
    text = (
        "# my hosts\n"
        f"[127.0.0.1]:2222 {old.get_name()} {old.get_base64()}\n"
        f"{hashed} {old.get_name()} {old.get_base64()}\n"
        f"example.com {other.get_name()} {other.get_base64()}\n"
    )
    result = ssh.known_hosts_with(text, "[127.0.0.1]:2222", new)
    assert result.splitlines() == [
        "# my hosts",
        f"example.com {other.get_name()} {other.get_base64()}",
        f"[127.0.0.1]:2222 {new.get_name()} {new.get_base64()}",
    ]


def test_recorded_keys_reads_hashed_and_plain_entries(tmp_path):
    key = new_key()
    path = tmp_path / "known_hosts"
    path.write_text(f"{paramiko.HostKeys.hash_host('[10.0.0.5]:22022')} {key.get_name()} {key.get_base64()}\n")
    assert ssh.recorded_keys(path, "10.0.0.5", 22022) == {key.get_name(): key}
    assert ssh.recorded_keys(path, "10.0.0.6", 22022) == {}
    assert ssh.recorded_keys(tmp_path / "absent", "10.0.0.5", 22022) == {}


def test_record_host_key_writes_a_private_file_atomically(tmp_path):
    path = tmp_path / "known_hosts"
    key = new_key()
    ssh.record_host_key(path, "127.0.0.1", 2200, key)
    assert path.read_text() == f"[127.0.0.1]:2200 {key.get_name()} {key.get_base64()}\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["known_hosts"]
