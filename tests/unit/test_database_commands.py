"""db.rotate-password's pure parts: the verifier PostgreSQL stores, the statement, the rewritten env files."""

import base64
import hashlib
import hmac

from fabfile.commands import database
from fabfile.commands.release import DB_PASSWORD_FILE

# RFC 7677's example exchange: user "user", password "pencil".
SALT = "W22ZaJ0SNY7soEsUEjb6gQ=="
NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
AUTH_MESSAGE = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={NONCE},s={SALT},i=4096,c=biws,r={NONCE}".encode()
CLIENT_PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_the_verifier_is_what_a_server_checks_rfc_7677s_example_exchange_against():
    verifier = database.scram_verifier("pencil", base64.b64decode(SALT))
    method, rest = verifier.split("$", 1)
    iterations_and_salt, keys = rest.split("$")
    assert method == "SCRAM-SHA-256" and iterations_and_salt == f"4096:{SALT}"
    stored_key, server_key = (base64.b64decode(key) for key in keys.split(":"))
    # The server proves itself with ServerKey, and checks the client's proof against StoredKey.
    assert base64.b64encode(hmac.new(server_key, AUTH_MESSAGE, "sha256").digest()).decode() == SERVER_SIGNATURE
    signature = hmac.new(stored_key, AUTH_MESSAGE, "sha256").digest()
    client_key = bytes(a ^ b for a, b in zip(base64.b64decode(CLIENT_PROOF), signature))
    assert hashlib.sha256(client_key).digest() == stored_key


def test_each_verifier_has_its_own_salt_and_never_holds_the_password():
    first, second = database.scram_verifier("s3cret-Pass"), database.scram_verifier("s3cret-Pass")
    assert first != second and "s3cret-Pass" not in first
    assert database.set_password_sql("demo", first) == f"ALTER ROLE \"demo\" PASSWORD '{first}';\n"


def test_a_rotation_changes_the_password_lines_and_nothing_else():
    serving = {"env/api.env": "# header\nDATABASE_NAME='demo'\nDATABASE_PASSWORD='old'\nOTHER='x=DATABASE_PASSWORD'\n",
               "env/worker.env": "DATABASE_PASSWORD='old'\n",
               "env/cron.env": "TOKEN='t'\n"}
    files = database.rotated_files(serving, "DATABASE_PASSWORD", "n$w#1")
    assert files == {"env/api.env": "# header\nDATABASE_NAME='demo'\nDATABASE_PASSWORD='n$w#1'\nOTHER='x=DATABASE_PASSWORD'\n",
                     "env/worker.env": "DATABASE_PASSWORD='n$w#1'\n",
                     DB_PASSWORD_FILE: "n$w#1"}
