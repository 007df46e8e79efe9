#!/usr/bin/env bash
# keep-running.sh COMMAND [ARGS...]: run COMMAND, and run it again each time it exits, until this script is
# told to stop (TERM or INT), which it passes on to COMMAND. Under `make run` every Procfile.dev line runs
# under it (scripts/supervised-procfile.sh), so a process that dies comes back, where honcho alone would
# stop all the others. Restarts wait 1 s, doubling up to 30 s while the command keeps dying at once.
set -uo pipefail
child=""
stopping=""
stop() {
    stopping=1
    if [[ -n "$child" ]]; then kill -TERM "$child" 2>/dev/null; fi
}
trap stop TERM INT
delay=1
while [[ -z "$stopping" ]]; do
    started=$SECONDS
    "$@" &
    child=$!
    status=0
    # `wait` returns early when a trapped signal arrives; wait again until the command has really ended.
    while kill -0 "$child" 2>/dev/null; do
        wait "$child"
        status=$?
    done
    child=""
    if [[ -n "$stopping" ]]; then break; fi
    if ((SECONDS - started > 60)); then delay=1; fi
    echo "keep-running: '$*' exited with status $status; starting it again in ${delay}s" >&2
    sleep "$delay" &
    wait $!
    delay=$((delay * 2 > 30 ? 30 : delay * 2))
done
