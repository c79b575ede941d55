#!/bin/sh
# Poll until every container is running, Docker-healthy when it has a Docker
# health check (a healthcheck.command, or the image's own), and answers HTTP
# 2xx on its health path from the host, at the ADDRESS nginx reaches it at
# (empty: its address on the first network it is on). Prints one status word per
# container; exits UNHEALTHY_EXIT when the time is up, or at once when a
# container has stopped.
# Usage: wait_healthy.sh TIMEOUT_SECONDS UNHEALTHY_EXIT CONTAINER|ADDRESS|PORT|PATH...
set -eu
timeout_seconds=$1 unhealthy_exit=$2
shift 2
deadline=$(( $(date +%s) + timeout_seconds ))
while :; do
  ready=1 dead=0 report=""
  for check in "$@"; do
    name=${check%%|*} rest=${check#*|}
    ip=${rest%%|*} rest=${rest#*|}
    port=${rest%%|*} path=${rest#*|}
    status=$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$name" 2>/dev/null || echo "missing/-")
    probe=-
    case $status in
      running/healthy|running/none)
        [ -n "$ip" ] || ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$name" | cut -d ' ' -f 1)
        probe=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$ip:$port$path" || true)
        case $probe in 2??) ;; *) ready=0 ;; esac ;;
      exited/*|dead/*|missing/*) ready=0 dead=1 ;;
      *) ready=0 ;;
    esac
    report="$report $name=$status,http=${probe:--}"
  done
  if [ "$ready" = 1 ]; then echo "healthy:$report"; exit 0; fi
  if [ "$dead" = 1 ] || [ "$(date +%s)" -ge "$deadline" ]; then echo "unhealthy:$report"; exit "$unhealthy_exit"; fi
  sleep 1
done
