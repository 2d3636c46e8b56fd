#!/usr/bin/env bash
# A throwaway (tests, benches) or private (demo) PostgreSQL cluster kept in one
# directory, listening on 127.0.0.1 only, with trust authentication.
#
#   tests/pg-cluster.sh start DIR [PORT]  initdb on first use, start, wait until
#                                         ready, print the URL
#   tests/pg-cluster.sh stop DIR          fast shutdown; fine if not running
#   tests/pg-cluster.sh url DIR           print the URL
#
# Layout of DIR:
#   data/              the data directory (owned by the server user)
#   port               the TCP port, chosen free at first start and reused
#   postgresql.log     the server log (appended to across starts)
#   .s.PGSQL.<port>    the unix socket
#
# Only the URL goes to stdout (url=$(tests/pg-cluster.sh start DIR)); what the
# script does goes to stderr.
#
# PostgreSQL refuses to run as root: as root, every server command runs as the
# `postgres` system user (PG_CLUSTER_USER to change it), which must own DIR and
# be able to reach it.  As anyone else the cluster runs as that user.
#
# Environment: PG_BINDIR (server binaries; default `pg_config --bindir`, else
# the highest /usr/lib/postgresql/*/bin), PG_CLUSTER_USER (default postgres).
set -eu

say() { echo "pg-cluster: $*" >&2; }
die() { echo "pg-cluster: error: $*" >&2; exit 1; }

usage() {
    echo "usage: $0 start DIR [PORT] | stop DIR | url DIR" >&2
    exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
port_arg=${3:-}
case $cmd in start | stop | url) ;; *) usage ;; esac
if [ -n "$port_arg" ]; then
    case $port_arg in *[!0-9]*) die "PORT must be a number, not '$port_arg'" ;; esac
fi

is_root=0
[ "$(id -u)" = 0 ] && is_root=1
if [ $is_root = 1 ]; then
    server_user=${PG_CLUSTER_USER:-postgres}
    id -u "$server_user" >/dev/null 2>&1 ||
        die "running as root, but there is no '$server_user' user to run PostgreSQL as (install the Debian postgresql package: deploy/install-deps.sh, or set PG_CLUSTER_USER)"
else
    server_user=$(id -un)
fi

# Runs a command as the server user, from DIR: the caller's working directory
# (e.g. /root) may be unreadable for that user.
as_server() {
    if [ $is_root = 1 ]; then
        if command -v runuser >/dev/null 2>&1; then
            (cd "$dir" && LC_ALL=C runuser -u "$server_user" -- "$@")
        else
            (cd "$dir" && LC_ALL=C setpriv --reuid="$server_user" --regid="$(id -g "$server_user")" \
                --init-groups -- "$@")
        fi
    else
        (cd "$dir" && LC_ALL=C "$@")
    fi
}

# Server binaries: pg_config's answer if it has a server there, else the
# highest installed major version.
find_bindir() {
    local d
    if [ -n "${PG_BINDIR:-}" ]; then
        [ -x "$PG_BINDIR/pg_ctl" ] || die "PG_BINDIR=$PG_BINDIR has no pg_ctl"
        echo "$PG_BINDIR"
        return
    fi
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
        echo "$d"
        return
    fi
    # shellcheck disable=SC2012 # version directories have plain names
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return
        fi
    done
    die "no PostgreSQL server binaries (initdb, pg_ctl) found; run deploy/install-deps.sh"
}

url_for() { echo "postgresql://postgres@127.0.0.1:$1/postgres"; }

# Writes stdin to a file in DIR, owned by the server user like the rest of DIR.
write_file() {
    cat >"$1"
    if [ $is_root = 1 ]; then chown "$server_user" "$1"; fi
}

# True when nothing listens on 127.0.0.1:PORT.  Binds with SO_REUSEADDR, as
# the postmaster does, so a port left in TIME_WAIT counts as free.  Perl is
# part of every Debian system (perl-base); bash's /dev/tcp is the fallback.
port_free() {
    if command -v perl >/dev/null 2>&1; then
        perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(LocalAddr => "127.0.0.1",
            LocalPort => $ARGV[0], Proto => "tcp", ReuseAddr => 1, Listen => 1) ? 0 : 1)' "$1"
    else
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 1; fi
    fi
}

# A free port below Linux's ephemeral range (32768+), so outgoing connections
# do not take it between the check and the server's bind.
pick_port() {
    local p i
    for i in $(seq 1 100); do
        p=$((15000 + (RANDOM * 32768 + RANDOM) % 17000))
        if port_free "$p"; then
            echo "$p"
            return
        fi
    done
    die "no free port found on 127.0.0.1 after $i tries"
}

running() { [ -f "$data/PG_VERSION" ] && as_server "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

# As root: DIR must belong to the server user and every parent must be
# traversable by it.  Say what is changed.
prepare_dir_for_server() {
    local owner p parents=()
    [ $is_root = 1 ] || return 0
    owner=$(stat -c %U "$dir")
    if [ "$owner" != "$server_user" ]; then
        say "chown $server_user $dir (the server runs as $server_user and must own its directory)"
        chown "$server_user" "$dir"
    fi
    if [ -d "$data" ] && [ "$(stat -c %U "$data")" != "$server_user" ]; then
        say "chown -R $server_user $dir (existing data directory not owned by $server_user)"
        chown -R "$server_user" "$dir"
    fi
    if as_server test -x "$dir" -a -w "$dir" 2>/dev/null; then
        return 0
    fi
    # Walk down from / so each check only depends on parents already fixed.
    p=$dir
    while [ "$p" != / ]; do
        p=$(dirname "$p")
        parents=("$p" "${parents[@]}")
    done
    for p in "${parents[@]}"; do
        if ! as_server test -x "$p" 2>/dev/null; then
            say "chmod o+x $p (so $server_user can reach $dir)"
            chmod o+x "$p"
        fi
    done
    as_server test -x "$dir" -a -w "$dir" || die "$server_user still cannot use $dir"
}

# Settings, rewritten at every start (port may change).  Included from
# postgresql.conf, so a cluster made by an older version of this script
# picks up new settings too.
write_settings() {
    local port=$1 sockdir=$dir
    # sun_path holds 107 bytes: past that, no unix socket, TCP only.
    if [ ${#sockdir} -gt $((107 - 18)) ]; then
        say "$dir is too long for a unix socket path; TCP only"
        sockdir=""
    fi
    write_file "$data/stepkit.conf" <<EOF
# Written by tests/pg-cluster.sh at every start: edits are overwritten.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir'
# Tests run several suites at once and benches open many connections.
max_connections = 200
shared_buffers = 256MB
# Durability as in production: benches must measure real commits.
fsync = on
synchronous_commit = on
full_page_writes = on
# Tests are deterministic in UTC; log lines say which program erred.
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%a '
# DROP SCHEMA ... CASCADE of a test schema locks every object in it.
max_locks_per_transaction = 256
EOF
}

# ---------------------------------------------------------------------------

if [ "$cmd" != start ] && [ ! -d "$dir" ]; then
    if [ "$cmd" = stop ]; then
        say "no cluster in $dir; nothing to stop"
        exit 0
    fi
    die "no cluster in $dir (run: $0 start $dir)"
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
data=$dir/data
log=$dir/postgresql.log

case $cmd in
url)
    [ -s "$dir/port" ] || die "no cluster in $dir (run: $0 start $dir)"
    url_for "$(cat "$dir/port")"
    ;;

stop)
    bindir=$(find_bindir)
    if ! [ -f "$data/PG_VERSION" ]; then
        say "no cluster in $dir; nothing to stop"
    elif ! running; then
        say "not running ($dir)"
    else
        say "stopping the cluster in $dir (fast: open sessions are cut)"
        as_server "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
        say "stopped"
    fi
    ;;

start)
    bindir=$(find_bindir)
    prepare_dir_for_server

    if [ ! -f "$data/PG_VERSION" ]; then
        say "initdb in $data as $server_user ($("$bindir/postgres" --version))"
        # --no-sync only skips flushing initdb's own files once: the server
        # itself runs with fsync on.
        as_server "$bindir/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=trust \
            --encoding=UTF8 --no-locale --no-sync --no-instructions >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; die "initdb failed (log above, also in $dir/initdb.log)"; }
        if [ $is_root = 1 ]; then chown "$server_user" "$dir/initdb.log"; fi
        echo "include = 'stepkit.conf'" | as_server tee -a "$data/postgresql.conf" >/dev/null
    fi

    if running; then
        port=$(cat "$dir/port")
        if [ -n "$port_arg" ] && [ "$port_arg" != "$port" ]; then
            say "already running on port $port (not $port_arg)"
        else
            say "already running on port $port"
        fi
        url_for "$port"
        exit 0
    fi

    # The requested port, else the one used last time if still free, else a
    # new free one.  A port taken between the check and the bind is retried.
    for attempt in 1 2 3 4 5; do
        if [ -n "$port_arg" ]; then
            port=$port_arg
        elif [ $attempt = 1 ] && [ -s "$dir/port" ] && port_free "$(cat "$dir/port")"; then
            port=$(cat "$dir/port")
        else
            port=$(pick_port)
        fi
        write_settings "$port"
        say "starting PostgreSQL in $dir on 127.0.0.1:$port (log: $log)"
        log_size=$(stat -c %s "$log" 2>/dev/null || echo 0)
        if as_server "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null; then
            as_server "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 30 ||
                die "server started but does not accept connections (see $log)"
            echo "$port" | write_file "$dir/port"
            say "ready"
            url_for "$port"
            exit 0
        fi
        if [ -z "$port_arg" ] && tail -c +"$((log_size + 1))" "$log" 2>/dev/null |
            grep -q 'could not bind\|Address already in use'; then
            say "port $port was taken meanwhile; trying another"
            continue
        fi
        tail -c +"$((log_size + 1))" "$log" 2>/dev/null | tail -n 20 >&2 || true
        die "PostgreSQL did not start (log above, full log in $log)"
    done
    die "PostgreSQL did not start: no port could be bound after 5 tries"
    ;;
esac
