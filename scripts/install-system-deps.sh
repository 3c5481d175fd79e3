#!/usr/bin/env bash
# Installs what trustloop needs from Debian 12 when it is missing: PostgreSQL 15,
# pgaudit, python3-venv, jq (the audit join in docs/audit.md) and, with --browser
# (make test), Chromium for the browser tests. Safe to run twice: it does nothing
# when all is there.
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
PGAUDIT=/usr/lib/postgresql/15/lib/pgaudit.so
need=()
[ -x "$PG_BIN/initdb" ] || need+=(postgresql-15)
[ -f "$PGAUDIT" ] || need+=(postgresql-15-pgaudit)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v jq >/dev/null || need+=(jq)
# The browser tests drive Debian's Chromium (tests/browser); no browser download.
if [ "${1:-}" = "--browser" ]; then
    [ -x /usr/bin/chromium ] || need+=(chromium)
fi

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "trustloop needs these Debian packages: ${need[*]}" >&2
    echo "Install them as root:  sudo apt-get install -y ${need[*]}" >&2
    exit 1
fi

echo "Installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# The stack runs its own private cluster; keep Debian from creating and starting
# a system-wide "main" cluster on port 5432 when postgresql-15 is installed.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/trustloop.conf
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
