#!/bin/sh
# Have systemd read its unit files again, then enable and start every UNIT.
# Usage: enable_units.sh UNIT...
set -eu
systemctl daemon-reload
systemctl enable --now "$@"
