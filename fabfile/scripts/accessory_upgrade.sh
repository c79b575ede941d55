#!/bin/sh
# Replace accessory CONTAINER by one made with the `docker create` arguments
# CREATE_ARG..., whose image is on the server already. The old one is
# stopped, kept as PREVIOUS (not restarted by Docker meanwhile) and removed
# once the new one passes CHECK (wait_healthy's) within TIMEOUT seconds. A new
# one that does not is removed, the old one gets its name back and starts
# (and is waited for likewise), and the run exits UNHEALTHY_EXIT with the new
# one's last words on stdout. The new environment (stdin) goes to ENV_FILE
# (mode 0600) only with the new container; the host folders it mounts
# (FOLDERS, one a line) are made first. Prints how long the accessory did not
# answer. A missing CONTAINER is simply created.
# Usage: accessory_upgrade.sh CONTAINER PREVIOUS ENV_FILE TIMEOUT UNHEALTHY_EXIT CHECK FOLDERS CREATE_ARG...
set -eu
container=$1 previous=$2 env_file=$3 timeout=$4 unhealthy_exit=$5 check=$6 folders=$7
shift 7
accessory_incoming='' kept=''
trap 'rm -f "$accessory_incoming" "$kept"' EXIT
trap 'exit 143' TERM INT HUP
accessory_environment "$env_file" "$folders"
kept=$(mktemp "$env_file.previous.XXXXXX")

exists() { docker container inspect "$1" >/dev/null 2>&1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# What an earlier upgrade cut off left: a new container that runs healthy is the one to replace; any
# other, the old one it kept aside.
if exists "$previous"; then
  case $(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$container" 2>/dev/null) in
    running/healthy|running/) docker rm -f "$previous" >/dev/null ;;
    *) docker rm -f "$container" >/dev/null 2>&1 || true
       docker rename "$previous" "$container" ;;
  esac
fi
had_old=0
if exists "$container"; then
  had_old=1
  [ ! -f "$env_file" ] || cp -p "$env_file" "$kept"
fi
began=$(now_ms)
if [ "$had_old" = 1 ]; then
  docker update --restart no "$container" >/dev/null
  docker stop "$container" >/dev/null
  docker rename "$container" "$previous"
fi
mv -f "$accessory_incoming" "$env_file"
if docker create "$@" >/dev/null && docker start "$container" >/dev/null \
    && wait_healthy "$timeout" "$unhealthy_exit" "$check" >/dev/null; then
  echo "answered again after $(( $(now_ms) - began )) ms"
  if [ "$had_old" = 1 ]; then docker rm "$previous" >/dev/null; fi
  exit 0
fi
echo "the new container never got healthy:"
docker logs --tail 10 "$container" 2>&1 | sed 's/^/  | /' || true
docker rm -f "$container" >/dev/null 2>&1 || true
if [ "$had_old" = 1 ]; then
  [ ! -s "$kept" ] || mv -f "$kept" "$env_file"
  docker rename "$previous" "$container"
  docker update --restart unless-stopped "$container" >/dev/null
  docker start "$container" >/dev/null
  if wait_healthy "$timeout" "$unhealthy_exit" "$check" >/dev/null; then
    echo "the old one runs again, healthy"
  else
    echo "the old one runs again, but did not get healthy in $timeout s either"
  fi
fi
exit "$unhealthy_exit"
