#!/bin/sh
# Put before the scripts that wait for containers' health (shell.script's `uses`).
# wait_healthy TIMEOUT_SECONDS UNHEALTHY_EXIT CONTAINER|ADDRESS|PORT|PATH...
# Poll until every container is running, Docker-healthy when it has a Docker
# health check (a healthcheck.command, or the image's own; with no PORT it
# must have one), and answers HTTP 2xx on its health path from the host, at
# the ADDRESS nginx reaches it at (empty: its address on the first network it
# is on), unless PORT is empty. Prints one status word per container; returns
# UNHEALTHY_EXIT when the time is up, or at once when a container has stopped.
wait_healthy() {
  wait_timeout=$1 wait_unhealthy_exit=$2
  shift 2
  wait_deadline=$(( $(date +%s) + wait_timeout ))
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
          if [ -z "$port" ]; then
            [ "$status" = running/healthy ] || ready=0
          else
            [ -n "$ip" ] || ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$name" | cut -d ' ' -f 1)
            probe=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$ip:$port$path" || true)
            case $probe in 2??) ;; *) ready=0 ;; esac
          fi ;;
        exited/*|dead/*|missing/*) ready=0 dead=1 ;;
        *) ready=0 ;;
      esac
      report="$report $name=$status,http=${probe:--}"
    done
    if [ "$ready" = 1 ]; then echo "healthy:$report"; return 0; fi
    if [ "$dead" = 1 ] || [ "$(date +%s)" -ge "$wait_deadline" ]; then echo "unhealthy:$report"; return "$wait_unhealthy_exit"; fi
    sleep 1
  done
}
