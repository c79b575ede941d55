#!/bin/sh
# Append stdin (one JSON line) to the audit log.
# Usage: append_audit.sh AUDIT_LOG
set -eu
mkdir -p "$(dirname "$1")"
cat >> "$1"
