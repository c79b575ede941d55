#!/bin/sh
# Replace the app's database with a dump, all or nothing (the caller has
# checked the dump's sha256 before anything changed): it is restored
# (pg_restore --exit-on-error --single-transaction) into a new database
# beside the live one; only when that succeeded are the two swapped by
# renaming both in one transaction, and the old one dropped. Any failure
# before the swap leaves the live database as it was (exit 4). Roles from
# GLOBALS ('' for none) are created when missing; existing ones are left as
# they are. The caller stops the app's containers first.
# (psql interpolates its :variables only in what it reads, never in -c.)
# Usage: restore.sh CONF DUMP GLOBALS
set -eu
conf=$1 dump=$2 globals=$3
# shellcheck source=SCRIPTDIR/lib_installed.sh
. "$(dirname "$0")/lib_installed.sh"
backups=$(setting BACKUPS_DIR) db=$(setting DB_CONTAINER) user=$(setting DB_USER) name=$(setting DB_NAME)
# Names no database.name can take (the config allows lowercase, digits, - and _ only) and that fit
# PostgreSQL's 63 bytes: a name derived from the live one could be truncated into the live one.
incoming=slipway.restore.incoming before=slipway.restore.before
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
exec 9>"$backups/.lock"
flock -w "$(setting LOCK_WAIT_SECONDS)" 9 || { echo "another backup, verify or restore holds $backups/.lock" >&2; exit 1; }

admin() { docker exec -i "$db" psql -X -q -v ON_ERROR_STOP=1 -U "$user" -d postgres -v name="$name" \
  -v incoming="$incoming" -v before="$before" -v owner="$user" "$@"; }
admin >/dev/null <<'SQL'
DROP DATABASE IF EXISTS :"incoming";
DROP DATABASE IF EXISTS :"before";
CREATE DATABASE :"incoming" TEMPLATE template0 OWNER :"owner";
SQL
if [ -n "$globals" ]; then
  admin -A -t -c 'SELECT rolname FROM pg_roles' >"$work/roles"
  # CREATE ROLE x; / ALTER ROLE x WITH ... for roles that exist here are left out: their passwords stay.
  awk 'NR == FNR { have[$0] = 1; next }
       /^(CREATE|ALTER) ROLE / { role = $3; sub(/;$/, "", role); gsub(/"/, "", role); if (role in have) next }
       { print }' "$work/roles" "$globals" \
    | docker exec -i "$db" psql -X -q -U "$user" -d postgres >/dev/null 2>"$work/globals.err" || true
fi
if ! docker exec -i "$db" pg_restore --exit-on-error --single-transaction -U "$user" -d "$incoming" \
    <"$dump" 2>"$work/restore.err"; then
  echo 'DROP DATABASE IF EXISTS :"incoming";' | admin >/dev/null 2>&1 || true
  echo "pg_restore failed, the database is as it was: $(grep -v '^$' "$work/restore.err" | tail -n 3 | tr '\n' ' ')" >&2
  exit 4
fi
# Clients that reconnect between the kick and the rename make it fail; a few tries, each one whole or nothing.
tries=0
until admin >/dev/null 2>"$work/swap.err" <<'SQL'
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :'name' AND pid <> pg_backend_pid();
BEGIN;
ALTER DATABASE :"name" RENAME TO :"before";
ALTER DATABASE :"incoming" RENAME TO :"name";
COMMIT;
SQL
do
  tries=$((tries + 1))
  if [ "$tries" -ge 10 ]; then
    echo 'DROP DATABASE IF EXISTS :"incoming";' | admin >/dev/null 2>&1 || true
    echo "could not swap in the restored database, the database is as it was: $(tail -n 2 "$work/swap.err" | tr '\n' ' ')" >&2
    exit 4
  fi
  sleep 1
done
echo 'DROP DATABASE :"before";' | admin >/dev/null
echo "restored $name"
