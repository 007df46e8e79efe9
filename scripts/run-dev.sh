#!/usr/bin/env bash
# `make run`: the whole system on the embedded default (SQLite, no Redis), demo data loaded.
# Settings given in the environment (DATABASE_URL, REDIS_URL, STRIPE_*, MAIL_*, PORT...) win.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PATH="$PWD/$BIN:$PATH"
export PORT="${PORT:-8000}"
mkdir -p instance

flask --app wsgi db upgrade
flask --app wsgi seed-demo

echo
echo "Mentor marketplace: http://127.0.0.1:${PORT}  (API docs: http://127.0.0.1:${PORT}/api/docs)"
echo
exec honcho start -f Procfile.dev -p "$PORT"
