#!/bin/sh
# Wait until every container is healthy (see lib_healthy.sh's wait_healthy).
# Usage: wait_healthy.sh TIMEOUT_SECONDS UNHEALTHY_EXIT CONTAINER|ADDRESS|PORT|PATH...
set -eu
wait_healthy "$@"
