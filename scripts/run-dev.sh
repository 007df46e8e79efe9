#!/usr/bin/env bash
# `make run`: the whole system on the embedded default (SQLite, no Redis), demo data loaded.
# Settings given in the environment (DATABASE_URL, REDIS_URL, STRIPE_*, MAIL_*, PORT...) win.
# Without STRIPE_SECRET_KEY a local Stripe stand-in (localstripe) runs on loopback, with its webhook
# registered at this app, so payments work end to end offline.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PATH="$PWD/$BIN:$PATH"
export PORT="${PORT:-8000}"
mkdir -p instance

stand_in_pid=""
cleanup() {
    if [[ -n "$stand_in_pid" ]]; then kill "$stand_in_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

if [[ -z "${STRIPE_SECRET_KEY:-}" ]]; then
    STRIPE_PORT="${STRIPE_PORT:-$((PORT + 111))}"
    mkdir -p instance/localstripe
    (cd instance/localstripe && exec python ../../scripts/run_localstripe.py "$STRIPE_PORT") \
        > instance/localstripe.log 2>&1 &
    stand_in_pid=$!
    export STRIPE_SECRET_KEY=sk_test_local_stand_in
    export STRIPE_PUBLISHABLE_KEY=pk_test_local_stand_in
    export STRIPE_WEBHOOK_SECRET=whsec_local_stand_in
    export STRIPE_API_BASE="http://127.0.0.1:${STRIPE_PORT}"
    export STRIPE_JS_URL="${STRIPE_API_BASE}/js.stripe.com/v3/"
    for _ in $(seq 1 50); do
        curl -fsS -o /dev/null "$STRIPE_API_BASE/v1/customers" -H "Authorization: Bearer $STRIPE_SECRET_KEY" && break
        sleep 0.2
    done
    curl -fsS -o /dev/null -X POST "$STRIPE_API_BASE/_config/webhooks/marketplace" \
        -d "url=http://127.0.0.1:${PORT}/webhooks/stripe" -d "secret=${STRIPE_WEBHOOK_SECRET}"
    echo "Stripe stand-in (localstripe): $STRIPE_API_BASE"
fi

flask --app wsgi db upgrade
flask --app wsgi seed-demo

echo
echo "Mentor marketplace: http://127.0.0.1:${PORT}/  (API docs: http://127.0.0.1:${PORT}/api/docs)"
echo "Sign in at http://127.0.0.1:${PORT}/login with a demo login above, e.g. ada@demo.test / demo-password-123"
echo "Book from a mentor's page and pay with the test card 4242 4242 4242 4242 (any future date, any CVC)"
echo
# Each process runs under a restart loop: one that dies comes back, the others keep running.
bash scripts/supervised-procfile.sh Procfile.dev > instance/Procfile.dev.supervised
honcho start -f instance/Procfile.dev.supervised -d . -p "$PORT"
