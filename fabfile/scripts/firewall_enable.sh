#!/bin/sh
# Let in only the given TCP ports and enable ufw, with a dead man's switch:
# the previous firewall is saved to BACKUP_DIR, with the restore script read
# from stdin, and comes back on its own after REVERT_SECONDS unless the
# caller proves a fresh SSH login and stops the timer first. Refuses to do
# anything when sshd does not listen on SSH_PORT.
# Usage: firewall_enable.sh SSH_PORT REVERT_SECONDS BACKUP_DIR RESET PORT...
set -eu
ssh_port=$1 revert_after=$2 backup=$3 reset=$4
shift 4
listening=$(sshd -T 2>/dev/null | awk '$1 == "port" {print $2}' | tr '\n' ' ')
case " $listening" in
  *" $ssh_port "*) ;;
  *) echo "sshd listens on port(s) ${listening:-none}but server.ssh_port is $ssh_port; the firewall was not changed" >&2
     exit 3 ;;
esac
rm -rf "$backup"
mkdir -p "$backup"
cat > "$backup/restore.sh"
cp -a /etc/ufw "$backup/etc-ufw"
if ufw status | grep -q '^Status: active'; then echo active > "$backup/state"; else echo inactive > "$backup/state"; fi
systemctl stop slipway-firewall-revert.timer slipway-firewall-revert.service 2>/dev/null || true
systemctl reset-failed slipway-firewall-revert.service 2>/dev/null || true
systemd-run --quiet --unit slipway-firewall-revert --on-active="$revert_after" /bin/sh "$backup/restore.sh" "$backup"
if [ "$reset" = 1 ]; then ufw --force reset >/dev/null; fi
ufw default deny incoming >/dev/null
ufw default allow outgoing >/dev/null
for port in "$@"; do ufw allow "$port/tcp" >/dev/null; done
ufw --force enable >/dev/null
