#!/bin/sh
# A fresh login got through the new firewall: stop the dead man's switch and
# drop the backup.
# Usage: firewall_confirm.sh BACKUP_DIR
set -eu
systemctl stop slipway-firewall-revert.timer slipway-firewall-revert.service 2>/dev/null || true
systemctl reset-failed slipway-firewall-revert.service 2>/dev/null || true
rm -rf "$1"
