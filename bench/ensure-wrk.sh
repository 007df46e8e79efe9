#!/usr/bin/env bash
# Make sure `wrk` (HTTP load generator, Debian package) is installed for `make bench`.
# Quiet when present. As root it apt-installs it; otherwise it says what to install and exits 1.
set -euo pipefail

command -v wrk >/dev/null 2>&1 && exit 0

if [[ "$(id -u)" -ne 0 ]]; then
    echo "Missing system package: wrk" >&2
    echo "Install it with: sudo apt-get update && sudo apt-get install -y --no-install-recommends wrk" >&2
    exit 1
fi

echo "Installing missing system package: wrk" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
