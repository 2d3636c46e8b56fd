#!/bin/sh
# Installs the Debian 12 packages StepKit needs to build, test, bench and demo,
# but only those that are missing.  Idempotent, and quick when nothing is
# missing, because `make test`, `make demo` and `make bench` call it every time.
#
#   deploy/install-deps.sh             build + test + bench + demo dependencies
#   deploy/install-deps.sh valgrind    the same, plus valgrind (for `make valgrind`)
#   deploy/install-deps.sh image       the same, plus mmdebstrap (for `make image`)
#   deploy/install-deps.sh prometheus  the same, plus promtool and the server (metrics tests)
#   deploy/install-deps.sh browser     the same, plus chromium (headless, for `make ui-test`)
#   deploy/install-deps.sh fuzz        the same, plus clang and libFuzzer (for `make fuzz`)
#   deploy/install-deps.sh --check     only report what is missing (exit 1 if any)
#
# Each check looks for what the build actually uses (a command, a pkg-config
# module, a header, a server binary) rather than for the package name, so a
# machine that provides it some other way is left alone.
set -eu

export DEBIAN_FRONTEND=noninteractive

check_only=0
want_valgrind=0
want_image=0
want_prometheus=0
want_browser=0
want_fuzz=0
for arg in "$@"; do
    case $arg in
        valgrind) want_valgrind=1 ;;
        image) want_image=1 ;;
        prometheus) want_prometheus=1 ;;
        browser) want_browser=1 ;;
        fuzz) want_fuzz=1 ;;
        --check) check_only=1 ;;
        *) echo "install-deps: unknown argument '$arg' (expected: valgrind, image, prometheus, browser, fuzz, --check)" >&2; exit 2 ;;
    esac
done

missing=""   # package names, space separated
reasons=""   # one "package: why" line per missing package

need() {     # need PACKAGE WHY: record a missing package
    missing="$missing $1"
    reasons="$reasons
    $1: $2"
}

have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pc()  { have_cmd pkg-config && pkg-config --exists "$@" 2>/dev/null; }
have_deb() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

# A PostgreSQL server directory that has everything the test cluster and the
# benches run: initdb/pg_ctl/postgres/pg_isready, and pgbench (which Debian 12
# ships in postgresql-15 itself; postgresql-contrib is only a metapackage that
# depends on postgresql-15, so installing `postgresql` is enough).
have_pg_server() {
    for d in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
        [ -n "$d" ] || continue
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] &&
            [ -x "$d/pg_isready" ] && [ -x "$d/pgbench" ] && return 0
    done
    return 1
}

have_cmd gcc        || need gcc "C compiler (the GNUmakefile builds with cc/gcc, ASan comes with it)"
have_cmd make       || need make "the build is a GNUmakefile"
have_cmd pkg-config || need pkg-config "the GNUmakefile asks pkg-config for compile and link flags"
have_pc libpq       || need libpq-dev "libpq headers and library (all database access)"
# libev has no .pc file on Debian 12: look for its header.
[ -f /usr/include/ev.h ] || need libev-dev "libev headers (the master and worker event loops)"
have_pc msgpack || have_pc msgpack-c || need libmsgpack-dev "msgpack-c headers (step payloads; stepkit.h includes msgpack.h)"
have_pc criterion   || need libcriterion-dev "Criterion (unit and integration test suites)"
have_pc jansson     || need libjansson-dev "jansson (JSON input and output)"
have_pc libcrypto   || need libssl-dev "libcrypto (hashing and random ids)"
have_pc uuid        || need uuid-dev "libuuid (ids of child runs)"
have_pg_server      || need postgresql "PostgreSQL server (initdb, pg_ctl, pgbench) for the throwaway test cluster, benches and demo"
# Time zone data: PostgreSQL and cron schedules resolve zone names through it.
have_deb tzdata     || need tzdata "time zone database (PostgreSQL and cron schedules)"
have_pc libmicrohttpd || need libmicrohttpd-dev "libmicrohttpd (the HTTP process: /livez, /readyz, /metrics)"
if [ "$want_image" = 1 ]; then
    have_cmd mmdebstrap || need mmdebstrap "requested: the container image's root filesystem from Debian's archive"
fi
if [ "$want_prometheus" = 1 ]; then
    { have_cmd promtool && have_cmd prometheus; } ||
        need prometheus "requested: promtool check metrics/rules and a scraping server in the tests"
    python3 -c 'import yaml' 2>/dev/null ||
        need python3-yaml "requested: tests/deploy/check-kubernetes.py reads the rendered manifests"
    have_cmd curl || need curl "requested: the HTTP tests send their requests with curl"
fi
if [ "$want_browser" = 1 ]; then
    # playwright-core (npm, tests/ui) drives this browser; it downloads none of its own.
    [ -x /usr/bin/chromium ] || need chromium "requested: the dashboard's browser tests (make ui-test) drive headless chromium"
    have_cmd node || need nodejs "requested: the browser tests are a Node.js script (playwright-core)"
    have_cmd npm || need npm "requested: npm ci installs the pinned playwright-core for the browser tests"
fi
if [ "$want_valgrind" = 1 ]; then
    have_cmd valgrind || need valgrind "requested: memory checking for 'make valgrind'"
fi
# libFuzzer ships in clang's runtime package, not in clang itself: link a tiny
# fuzz target to see whether both are there.
have_libfuzzer() {
    have_cmd clang || return 1
    t=$(mktemp -d) || return 1
    printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$t/f.c"
    if clang -fsanitize=fuzzer,address,undefined -o "$t/f" "$t/f.c" >/dev/null 2>&1; then
        rm -rf "$t"
        return 0
    fi
    rm -rf "$t"
    return 1
}
if [ "$want_fuzz" = 1 ]; then
    have_cmd clang || need clang "requested: 'make fuzz' builds its libFuzzer targets with clang"
    have_libfuzzer || need libclang-rt-14-dev "requested: libFuzzer and the sanitizer runtimes for clang ('make fuzz')"
fi

if [ -z "$missing" ]; then
    echo "install-deps: all dependencies present"
    exit 0
fi

echo "install-deps: missing packages:$reasons"
if [ "$check_only" = 1 ]; then
    exit 1
fi

if ! have_cmd apt-get; then
    echo "install-deps: apt-get not found (this script targets Debian 12); install by hand:$missing" >&2
    exit 1
fi

# Root installs directly; anyone else goes through sudo, or is told what to run.
if [ "$(id -u)" = 0 ]; then
    as_root=""
elif have_cmd sudo; then
    as_root="sudo"
    echo "install-deps: not root, using sudo"
else
    echo "install-deps: not root and sudo is not available; as root, run:" >&2
    echo "    apt-get update && apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi

# One `apt-get update` (a fresh container has no package lists), then one install.
echo "install-deps: apt-get update"
$as_root env DEBIAN_FRONTEND=noninteractive apt-get -q update
echo "install-deps: apt-get install -y --no-install-recommends$missing"
# shellcheck disable=SC2086 # $missing is a list of package names
$as_root env DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends \
    -o Dpkg::Use-Pty=0 $missing
echo "install-deps: installed$missing"
