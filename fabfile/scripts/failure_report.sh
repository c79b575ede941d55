#!/bin/sh
# What an operator needs to see about containers that never became healthy.
# Usage: failure_report.sh CONTAINER...
set -u
for name in "$@"; do
  echo "--- $name: last health checks"
  docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}exit {{.ExitCode}}: {{.Output}}{{end}}{{end}}' "$name" 2>&1 | tail -n 6
  echo "--- $name: last log lines"
  docker logs --tail 15 "$name" 2>&1
done
