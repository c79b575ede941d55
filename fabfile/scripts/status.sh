#!/bin/sh
# Facts for `status` that have no script of their own, section by section:
# the serving slot and release (MARKER exists: MARKED_SLOT; else the other),
# its record, the maintenance record, every container of the app (name,
# compose project and service, or - and the accessory's name for an
# accessory, state, health, start time, restarts, OOM-killed, memory in bytes), and the host: each filesystem of
# PATH (size, used, inodes), memory, load and CPU count.
# A serving web container with no Docker health check of its own is probed
# on its health path from here instead (HEALTH_PATHS: SERVICE|PORT|PATH
# words), and reported healthy when it answers 2xx, else unhealthy.
# Each part is bounded in time, so a hung Docker cannot hang the status.
# Usage: status.sh MARK APP TRAFFIC_DIR MARKER MARKED_SLOT UNMARKED_SLOT RELEASES_DIR MAINTENANCE_PAGE HEALTH_PATHS [PATH]...
set -u
mark=$1 app=$2 traffic=$3 marker=$4 marked=$5 unmarked=$6 releases=$7 page=$8 health_paths=$9
shift 9
serving=$(serving_release "$traffic" "$marker" "$marked" "$unmarked")
release=${serving#* }
echo "$mark serving"; echo "$serving"
echo "$mark record"; [ -n "$release" ] && head -n 1 "$releases/$release/release.json" 2>/dev/null
echo "$mark maintenance"; [ -f "$page" ] && cat "$traffic/maintenance.json" 2>/dev/null
# Memory in use by each container's cgroup as `docker stats` counts it (without page cache it can drop),
# read from the cgroup itself (`docker stats` takes seconds), for every container in one awk: cgroup v1
# names its memory controller; v2 has one tree. Prints each line of stdin after its container's memory.
memory_in_use() {
  awk '
    function memory(pid,    file, line, group, dir, counter, cache, used, pair) {
      if (pid == 0) return "-"
      file = "/proc/" pid "/cgroup"
      while ((getline line < file) > 0) {
        if (line ~ /^[0-9]+:memory:/) {
          sub(/^[0-9]+:memory:/, "", line)
          dir = "/sys/fs/cgroup/memory" line; counter = "memory.usage_in_bytes"; cache = "total_inactive_file"
        } else if (line ~ /^0::/) group = substr(line, 4)
      }
      close(file)
      if (dir == "") { dir = "/sys/fs/cgroup" group; counter = "memory.current"; cache = "inactive_file" }
      file = dir "/" counter
      if ((getline used < file) <= 0) { close(file); return "-" }
      close(file)
      file = dir "/memory.stat"
      while ((getline line < file) > 0) { split(line, pair, " "); if (pair[1] == cache) used -= pair[2] }
      close(file)
      # Whole bytes: mawk prints a computed number of 2^31 or more in exponent form.
      return sprintf("%.0f", used)
    }
    { print memory($9), $0 }'
}
# The health of a serving web container of SERVICE with no Docker health check, at ADDRESSES: its health
# path's answer.
probed_health() {
  for check in $health_paths; do
    [ "${check%%|*}" = "$1" ] || continue
    rest=${check#*|}
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://${2%%,*}:${rest%%|*}${rest#*|}" || true)
    case $code in 2??) echo healthy ;; *) echo unhealthy ;; esac
    return
  done
  echo -
}
echo "$mark containers"
ids=$(timeout 5 docker ps -aq --filter "name=^$app-" 2>/dev/null)
if [ -n "$ids" ]; then
  # shellcheck disable=SC2086 # container IDs: hex, no blanks
  timeout 5 docker inspect -f '{{.Name}} {{with index .Config.Labels "com.docker.compose.project"}}{{.}}{{else}}-{{end}} {{with index .Config.Labels "com.docker.compose.service"}}{{.}}{{else}}{{with index .Config.Labels "slipway.accessory.name"}}{{.}}{{else}}-{{end}}{{end}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}} {{.State.StartedAt}} {{.RestartCount}} {{.State.OOMKilled}} {{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}},{{end}}' $ids \
    | memory_in_use \
    | while read -r memory name project service state health started restarts oom _pid addresses; do
        if [ "$health" = - ] && [ "$state" = running ] && [ "$project" = "$app-$release" ]; then
          health=$(probed_health "$service" "$addresses")
        fi
        echo "$name $project $service $state $health $started $restarts $oom $memory"
      done
fi
echo "$mark disk"; df -P -k "$@" 2>/dev/null | tail -n +2
echo "$mark inodes"; df -P -i "$@" 2>/dev/null | tail -n +2
echo "$mark host"
grep -E '^(MemTotal|MemAvailable|SwapTotal|SwapFree):' /proc/meminfo
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cpus $(nproc)"
