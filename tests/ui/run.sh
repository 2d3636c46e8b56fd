#!/usr/bin/env bash
# The dashboard in a real browser (make ui-test): a throwaway PostgreSQL, a
# real stepkit-master with --ui and a token file, runs in every state
# (tests/ui/uiwf.c), then tests/ui/browser.mjs drives headless chromium
# (playwright-core from ui/package-lock.json, /usr/bin/chromium) through the
# pages and saves screenshots under $BUILD/ui-screenshots/.
#
# Environment: BUILD (default build), POSTGRES_TEST_URL (use this server
# instead of a throwaway cluster), UI_KEEP=1 (leave the master and cluster
# running at the end and print the URL, to look around by hand).
set -eu

say() { echo "ui-test: $*"; }
die() { echo "ui-test: error: $*" >&2; exit 1; }

cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BUILD_ABS=$(cd "$BUILD" && pwd -P)
MASTER=$BUILD_ABS/bin/stepkit-master
CLI=$BUILD_ABS/bin/stepkit
WF=$BUILD_ABS/tests/uiwf.so
SHOTS=$BUILD_ABS/ui-screenshots
[ -x "$MASTER" ] && [ -x "$CLI" ] && [ -f "$WF" ] || die "build first: make all $BUILD/tests/uiwf.so"
[ -x /usr/bin/chromium ] || die "no /usr/bin/chromium: deploy/install-deps.sh browser"

# playwright-core, pinned in ui/package-lock.json (it downloads no browser).
if [ ! -f ui/node_modules/playwright-core/package.json ]; then
    say "npm ci (ui/package-lock.json)"
    (cd ui && npm ci --no-audit --no-fund >/dev/null)
fi

tmp=$(mktemp -d /tmp/stepkit-ui-test.XXXXXX)
chmod 755 "$tmp"
master_pid=""
cluster=""
cleanup() {
    rc=$?
    if [ "${UI_KEEP:-}" = 1 ] && [ $rc = 0 ]; then
        say "kept: master pid $master_pid, $BASE/ui/, token in $tmp/token"
        return
    fi
    if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
        kill -TERM "$master_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$master_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$master_pid" 2>/dev/null || true
    fi
    if [ -n "$cluster" ]; then
        tests/pg-cluster.sh stop "$cluster" 2>/dev/null || true
    fi
    if [ $rc != 0 ] && [ -f "$tmp/master.log" ]; then
        say "master log (last 40 lines):"
        tail -n 40 "$tmp/master.log" >&2
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT INT TERM

if [ -n "${POSTGRES_TEST_URL:-}" ]; then
    DATABASE_URL=$POSTGRES_TEST_URL
else
    cluster=$tmp/pg
    mkdir -p "$cluster"
    [ "$(id -u)" = 0 ] && chown "${PG_CLUSTER_USER:-postgres}" "$cluster"
    DATABASE_URL=$(tests/pg-cluster.sh start "$cluster" 2>"$tmp/pg-start.log") ||
        { cat "$tmp/pg-start.log" >&2; die "cannot start PostgreSQL"; }
fi
export DATABASE_URL
export STEPKIT_SCHEMA=ui_test_$$
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$port
TOKEN=ui-test-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$TOKEN" > "$tmp/token"
chmod 600 "$tmp/token"

say "master on $BASE (schema $STEPKIT_SCHEMA)"
setsid "$MASTER" --workflows "$WF" --workers 3 --http "127.0.0.1:$port" --ui \
    --ui-token-file "$tmp/token" --shutdown-timeout 2000 --step-timeout 60000 \
    > "$tmp/master.log" 2>&1 &
master_pid=$!
for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz" || true)
    [ "$code" = 200 ] && break
    kill -0 "$master_pid" 2>/dev/null || die "the master exited"
    sleep 0.2
done
[ "$code" = 200 ] || die "the master is not ready after 20 s"

# A backlog first (one statement), so the queue chart has something to show.
psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
    -c "SELECT count($STEPKIT_SCHEMA.start_run('ui-checkout')) FROM generate_series(1, 80)" >/dev/null

start() { "$CLI" start "$@"; }
completed=$(start ui-checkout --data '{"sleep_ms": 0}')
failed=$(start ui-payment --data '{"order": 1042, "amount_cents": 12999, "note": "<img src=x onerror=alert(1)>"}')
approval=$(start ui-approval --data '{"signal": "approve-1042"}')
to_cancel=$(start ui-approval --data '{"signal": "approve-2077"}')
cancelled=$(start ui-approval --data '{"signal": "approve-3001"}')
sleeping=$(start ui-checkout --data '{"sleep_ms": 3600000}')
running=$(start ui-crunch --data '{"ms": 600000}')
parent=$(start ui-order --data '{"customer": "ACME <b>Corp</b>"}')

# Wait for each run's state as `stepkit run --json` reports it.
state_of() { "$CLI" run "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])'; }
wait_state() {
    for _ in $(seq 1 300); do
        [ "$(state_of "$1")" = "$2" ] && return 0
        sleep 0.2
    done
    die "run $1 did not reach $2 (is $(state_of "$1"))"
}
wait_state "$completed" completed
wait_state "$failed" failed
wait_state "$approval" waiting
wait_state "$to_cancel" waiting
wait_state "$cancelled" waiting
"$CLI" cancel "$cancelled" --reason "customer changed their mind" >/dev/null
wait_state "$cancelled" cancelled
wait_state "$sleeping" waiting
wait_state "$running" running
wait_state "$parent" completed
say "runs ready: completed $completed, failed $failed, waiting $approval, sleeping $sleeping, running $running"

rm -rf "$SHOTS"
mkdir -p "$SHOTS"
export BASE TOKEN SHOTS CLI
export RUNS="{\"completed\":\"$completed\",\"failed\":\"$failed\",\"approval\":\"$approval\",\"to_cancel\":\"$to_cancel\",\"cancelled\":\"$cancelled\",\"sleeping\":\"$sleeping\",\"running\":\"$running\",\"parent\":\"$parent\"}"
node tests/ui/browser.mjs
say "screenshots in $SHOTS"
