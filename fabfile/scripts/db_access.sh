#!/bin/sh
# Who may log in to the app's database, for a password rotation. DB is the
# database container, USER and NAME the app's role and database; MODE is one of:
#   check [CLEAN]
#            does the password on stdin open the database the way the app
#            connects (over the network, with a password)? Exits 0, or
#            WRONG_EXIT when it does not. CLEAN 1 (under the deploy lock,
#            so no rotation runs) first removes password-less lines an
#            interrupted rotation left.
#   verifier print USER's stored password verifier (to put back on failure).
#   set      run the ALTER ROLE statement on stdin (the statement, not the
#            password, travels: a verifier made by slipway).
#   trust APP TRAFFIC_DIR MARKER MARKED_SLOT UNMARKED_SLOT
#            let the serving release's containers log in as USER without a
#            password, by their addresses (pg_hba.conf lines before all
#            others), so they keep working after the password changes and
#            until they stop; `untrust` removes those lines. `leftovers LOCK`
#            prints how many such lines there are and, when there are some
#            and the deploy lock LOCK is free (no rotation runs), removes
#            them: "removed N", "kept N" (a run holds the lock) or 0. A file PostgreSQL
#            reports errors in is put back as it was. Either ends with the
#            rules reloaded.
# Usage: db_access.sh DB USER NAME WRONG_EXIT MODE [ARG...]
set -eu
db=$1 user=$2 name=$3 wrong=$4 mode=$5
shift 5
# No -i: docker exec would read this script's stdin (check's password) away.
sql() { docker exec "$db" psql -X -A -t -q -v ON_ERROR_STOP=1 -U "$user" -d "$name" "$@"; }
# Rewrites the rules file with a trust line for USER from each address given, dropping any such
# lines there were; run inside the database container as the owner of its data.
# shellcheck disable=SC2016 # the program runs in the container, with its values as arguments
rewrite='hba=$1 user=$2 mark=$3
shift 3
{ for address; do printf "host all \"%s\" %s/32 trust %s\n" "$user" "$address" "$mark"; done
  grep -v -F -e "$mark" "$hba" || true; } > "$hba.slipway"
mv -f "$hba.slipway" "$hba"'
mark='# slipway: until the password rotation ends'
rules() {
  hba=$(sql -c 'SHOW hba_file')
  docker exec -u postgres "$db" sh -c "$rewrite" slipway-hba "$hba" "$user" "$mark" "$@"
  if [ "$(sql -c 'SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL')" != 0 ]; then
    docker exec -u postgres "$db" sh -c "$rewrite" slipway-hba "$hba" "$user" "$mark"
    echo "PostgreSQL refused the access rules slipway wrote; they were taken out again" >&2
    exit 1
  fi
  sql -c 'SELECT pg_reload_conf()' >/dev/null
  # The postmaster reads the file again on its next turn, not before pg_reload_conf returns.
  sleep 1
}
# How many password-less network lines name USER (only a rotation writes such lines).
leftovers() {
  docker exec -i "$db" psql -X -A -t -q -v ON_ERROR_STOP=1 -U "$user" -d "$name" -v role="$user" <<'SQL'
SELECT count(*) FROM pg_hba_file_rules WHERE type = 'host' AND auth_method = 'trust' AND user_name = ARRAY[:'role'];
SQL
}
case $mode in
  check)
    sql -c 'SELECT 1' >/dev/null
    if [ "${1:-0}" = 1 ] && [ "$(leftovers)" != 0 ]; then
      rules
      echo "removed the password-less lines of an interrupted password rotation" >&2
    fi
    IFS= read -r PGPASSWORD || true
    export PGPASSWORD
    address=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$db")
    # Only PostgreSQL's refusal of the password is a wrong one: anything else (a server that has just started
    # and does not take TCP yet) is tried again for ten seconds.
    tries=0
    until said=$(docker exec -e PGPASSWORD "$db" psql -X -q -h "${address%% *}" -U "$user" -d "$name" \
        -c 'SELECT 1' 2>&1 >/dev/null); do
      tries=$((tries + 1))
      case $said in *"password authentication failed"*) exit "$wrong" ;; esac
      if [ "$tries" -ge 20 ]; then
        printf '%s\n' "$said" | tail -n 1 >&2
        exit "$wrong"
      fi
      sleep 0.5
    done
    exit 0 ;;
  verifier) sql -c "SELECT rolpassword FROM pg_authid WHERE rolname = current_user" ;;
  # Terse: an error names no line of the statement (its verifier).
  set) docker exec -i "$db" psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=terse -U "$user" -d "$name" ;;
  trust)
    app=$1 traffic=$2 marker=$3 marked=$4 unmarked=$5
    serving=$(serving_release "$traffic" "$marker" "$marked" "$unmarked")
    release=${serving#* }
    # shellcheck disable=SC2046 # one address per word
    set -- $(docker ps -q --filter "label=com.docker.compose.project=$app-$release" \
      | xargs -r docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}')
    rules "$@"
    echo "$*" ;;
  untrust) rules ;;
  leftovers)
    count=$(leftovers)
    if [ "$count" = 0 ]; then echo 0; exit 0; fi
    exec 8>>"$1"
    if flock -n 8; then
      rules
      echo "removed $count"
    else
      echo "kept $count"
    fi ;;
  *) echo "db_access.sh: unknown mode $mode" >&2; exit 2 ;;
esac
