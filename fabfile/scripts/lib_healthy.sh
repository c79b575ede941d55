#!/bin/sh
# Put before the scripts that wait for containers' health (shell.script's `uses`).
# wait_healthy TIMEOUT_SECONDS UNHEALTHY_EXIT CONTAINER|ADDRESS|PORT|PATH...
# Poll until every container is running, Docker-healthy when it has a Docker
# health check (a healthcheck.command, or the image's own; with no PORT it
# must have one), and answers HTTP 2xx on its health path from the host, at
# the ADDRESS nginx reaches it at (empty: its address on the first network it
# is on), unless PORT is empty. Prints one status word per container; returns
# UNHEALTHY_EXIT when the time is up, or at once when a container has stopped.
# Its variables start with wait_, so that it changes none of its caller's.
wait_healthy() {
  wait_timeout=$1 wait_unhealthy_exit=$2
  shift 2
  wait_deadline=$(( $(date +%s) + wait_timeout ))
  while :; do
    wait_ready=1 wait_dead=0 wait_report=""
    for wait_check in "$@"; do
      wait_name=${wait_check%%|*} wait_rest=${wait_check#*|}
      wait_ip=${wait_rest%%|*} wait_rest=${wait_rest#*|}
      wait_port=${wait_rest%%|*} wait_path=${wait_rest#*|}
      wait_status=$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$wait_name" 2>/dev/null || echo "missing/-")
      wait_probe=-
      case $wait_status in
        running/healthy|running/none)
          if [ -z "$wait_port" ]; then
            [ "$wait_status" = running/healthy ] || wait_ready=0
          else
            [ -n "$wait_ip" ] || wait_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$wait_name" | cut -d ' ' -f 1)
            wait_probe=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$wait_ip:$wait_port$wait_path" || true)
            case $wait_probe in 2??) ;; *) wait_ready=0 ;; esac
          fi ;;
        exited/*|dead/*|missing/*) wait_ready=0 wait_dead=1 ;;
        *) wait_ready=0 ;;
      esac
      wait_report="$wait_report $wait_name=$wait_status,http=${wait_probe:--}"
    done
    if [ "$wait_ready" = 1 ]; then echo "healthy:$wait_report"; return 0; fi
    if [ "$wait_dead" = 1 ] || [ "$(date +%s)" -ge "$wait_deadline" ]; then
      echo "unhealthy:$wait_report"
      return "$wait_unhealthy_exit"
    fi
    sleep 1
  done
}
