#!/usr/bin/env bash
# supervised-procfile.sh PROCFILE: print PROCFILE with each process line run under scripts/keep-running.sh,
# for honcho (`make run`): a process that dies is started again instead of honcho stopping them all.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sed -E "s#^([A-Za-z0-9_]+):[[:space:]]*#\\1: bash ${here}/keep-running.sh #" "$1"
