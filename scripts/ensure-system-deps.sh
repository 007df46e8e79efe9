#!/usr/bin/env bash
# Make sure the system programs the test suite and dev runner start for real are installed:
# PostgreSQL (+contrib, for btree_gist), redis-server, chromium (browser tests) and nginx (the production
# shape of chaos/, `make prod-sim`).
# Idempotent and quiet when everything is present. As root it apt-installs only what is missing
# (one `apt-get update`); otherwise it prints what to install and exits 1.
set -euo pipefail

missing=()

have_initdb() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" ]] && return 0
    done
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        [[ -n "$d" && -x "$d/initdb" ]] && return 0
    fi
    command -v initdb >/dev/null 2>&1
}

have_btree_gist() {
    local f
    for f in /usr/share/postgresql/*/extension/btree_gist.control; do
        [[ -e "$f" ]] && return 0
    done
    return 1
}

if ! have_initdb; then
    missing+=(postgresql postgresql-contrib)
elif ! have_btree_gist; then
    missing+=(postgresql-contrib)
fi
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "Missing system packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "Installing missing system packages: ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
