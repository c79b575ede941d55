#!/bin/sh
# Put back the firewall firewall_enable.sh saved in BACKUP_DIR (its rules, and
# whether it was on), stop the dead man's switch and drop the backup.
# Usage: firewall_restore.sh BACKUP_DIR
set -eu
backup=$1
[ -d "$backup/etc-ufw" ] || exit 0
was=$(cat "$backup/state")
ufw --force disable >/dev/null
rm -rf /etc/ufw
cp -a "$backup/etc-ufw" /etc/ufw
if [ "$was" = active ]; then ufw --force enable >/dev/null; fi
rm -rf "$backup"
systemctl stop slipway-firewall-revert.timer 2>/dev/null || true
echo "firewall restored (it was $was)"
