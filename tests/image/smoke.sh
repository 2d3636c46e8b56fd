#!/usr/bin/env bash
# `make image-test`: the built OCI image runs StepKit.  podman cannot run
# containers in this sandbox, so the image's own layer is unpacked from
# BUILD/stepkit-image.oci.tar and run as a container would run it: in new
# mount and PID namespaces, chrooted, as the image's non-root user, with the
# root filesystem read-only and a tmpfs on /tmp (readOnlyRootFilesystem in
# deploy/kubernetes), against a throwaway PostgreSQL (tests/pg-cluster.sh).
#
# What runs, all binaries from the image:
#   1. `stepkit migrate` (the migration Job)
#   2. `stepkit-master --no-migrate` with the image's entrypoint and
#      environment (the Deployment), DATABASE_URL_FILE from a mounted file
#   3. `stepkit invoke say-hi` (the example library): a run to completion
#   4. GET /livez, /readyz and /metrics on the HTTP port, when the binary
#      has one (stepkit-master --help lists --http)
#   5. the database stopped and started again: /readyz 503 then 200,
#      /livez 200 throughout
#   6. SIGTERM: the master drains and exits 0
#
#   tests/image/smoke.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
# shellcheck source=deploy/image/image.env
. deploy/image/image.env
say() { echo "image-test: $*"; }
die() { echo "image-test: FAIL: $*" >&2; exit 1; }

archive=$build/stepkit-image.oci.tar
[ -s "$archive" ] || die "$archive is missing (make image)"
[ "$(id -u)" = 0 ] || die "needs root (chroot, namespaces)"

tmp=$(mktemp -d /tmp/stepkit-image-test.XXXXXX)
pgdir=""
master_pid=""
cleanup() {
    if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
        kill -KILL "$master_pid" 2>/dev/null || true
    fi
    if [ -n "$pgdir" ]; then tests/pg-cluster.sh stop "$pgdir" || true; fi
    umount -R "$tmp/root" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# ---- unpack the image's layer -------------------------------------------------------
mkdir -p "$tmp/oci" "$tmp/root"
tar -C "$tmp/oci" -xf "$archive"
manifest=$(jq -r '.manifests[0].digest' "$tmp/oci/index.json" | sed 's/^sha256://')
config=$(jq -r '.config.digest' "$tmp/oci/blobs/sha256/$manifest" | sed 's/^sha256://')
layer=$(jq -r '.layers[0].digest' "$tmp/oci/blobs/sha256/$manifest" | sed 's/^sha256://')
cfg=$tmp/oci/blobs/sha256/$config
echo "$config  $tmp/oci/blobs/sha256/$config" | sha256sum -c --quiet || die "config digest"
echo "$layer  $tmp/oci/blobs/sha256/$layer" | sha256sum -c --quiet || die "layer digest"
tar -C "$tmp/root" -xzf "$tmp/oci/blobs/sha256/$layer"
if command -v skopeo >/dev/null 2>&1; then
    # An independent reader of the archive: copying it verifies every digest and size.
    skopeo copy --quiet "oci-archive:$archive" "dir:$tmp/skopeo" || die "skopeo cannot read $archive"
    say "skopeo copy oci-archive: ok ($(ls "$tmp/skopeo" | wc -l) files)"
fi
user=$(jq -r .config.User "$cfg")
entrypoint=$(jq -r '.config.Entrypoint[0]' "$cfg")
workdir=$(jq -r .config.WorkingDir "$cfg")
mapfile -t image_env < <(jq -r '.config.Env[]' "$cfg")
say "image: $(du -sh --apparent-size "$tmp/root" | cut -f1) unpacked, compressed layer $(($(stat -c %s "$tmp/oci/blobs/sha256/$layer") / 1024)) KiB, user $user, entrypoint $entrypoint"
[ "$user" = "$IMAGE_UID:$IMAGE_GID" ] || die "image user '$user'"
case $user in 0:* | root*) die "the image runs as root" ;; esac
for bad in gcc cc make apt-get dpkg bash sh; do
    for d in usr/bin bin usr/sbin sbin; do
        [ ! -e "$tmp/root/$d/$bad" ] || die "the image holds /$d/$bad"
    done
done
say "no shell, compiler or package manager in the image"

# ---- PostgreSQL -----------------------------------------------------------------------
pgdir=$(mktemp -d /tmp/stepkit-image-pg.XXXXXX)
url=$(tests/pg-cluster.sh start "$pgdir")
say "PostgreSQL: $url"
mkdir -p "$tmp/secret"
printf '%s\n' "$url" >"$tmp/secret/database-url"
chmod 0444 "$tmp/secret/database-url"

# A container's view: read-only root, tmpfs /tmp, /proc of its own PID namespace, the secret
# mounted read-only.  `inside CMD...` runs CMD in it as the image's user with the image's env.
mkdir -p "$tmp/root/proc" "$tmp/root/run/secrets/stepkit" "$tmp/root/dev"
: >"$tmp/root/dev/null"
cat >"$tmp/inside.sh" <<'INSIDE'
root=$1; secret=$2; shift 2
mount --bind "$root" "$root"
mount --bind "$secret" "$root/run/secrets/stepkit"
mount -o remount,bind,ro "$root/run/secrets/stepkit"
mount -t tmpfs -o mode=1777,size=16m tmpfs "$root/tmp"
mount -t proc proc "$root/proc"
mount --bind /dev/null "$root/dev/null"
mount -o remount,bind,ro "$root"
exec /usr/sbin/chroot --userspec="$USERSPEC" "$root" "$@"
INSIDE
inside() {
    (cd / && env -i "${image_env[@]}" HOME="$workdir" USERSPEC="$user" \
        DATABASE_URL_FILE=/run/secrets/stepkit/database-url \
        /usr/bin/unshare --mount --pid --fork --kill-child -- /bin/sh -e "$tmp/inside.sh" "$tmp/root" "$tmp/secret" "$@")
}

say "1. stepkit migrate (the migration Job)"
inside /usr/local/bin/stepkit migrate ||
    die "stepkit migrate failed"

say "2. $entrypoint --no-migrate (the Deployment)"
http_args=()
if inside "$entrypoint" --help | grep -q -- '--http'; then
    http_port=$((20000 + RANDOM % 20000))
    http_args=(--http "127.0.0.1:$http_port")
fi
inside "$entrypoint" --no-migrate --workers 2 "${http_args[@]}" >"$tmp/master.log" 2>&1 &
master_pid=$!

say "3. stepkit invoke say-hi (a workflow of the example library, to completion)"
out=""
for _ in $(seq 1 100); do
    if out=$(inside /usr/local/bin/stepkit invoke say-hi --data '{"name":"Image"}' --timeout 10000 2>&1); then
        break
    fi
    sleep 0.2
done
echo "    output: $out"
case $out in *Image*) ;; *) cat "$tmp/master.log" >&2; die "say-hi did not complete" ;; esac

if [ ${#http_args[@]} -gt 0 ]; then
    say "4. probes and metrics on 127.0.0.1:$http_port"
    code=""
    for _ in $(seq 1 100); do
        code=$(curl -s -o "$tmp/readyz" -w '%{http_code}' "http://127.0.0.1:$http_port/readyz" || true)
        [ "$code" = 200 ] && break
        sleep 0.2
    done
    echo "    /readyz: $code $(cat "$tmp/readyz" 2>/dev/null)"
    [ "$code" = 200 ] || die "/readyz is not 200"
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/livez")
    echo "    /livez: $code"
    [ "$code" = 200 ] || die "/livez is not 200"
    curl -sf "http://127.0.0.1:$http_port/metrics" >"$tmp/metrics" || die "/metrics"
    grep -E '^stepkit_runs_completed_total' "$tmp/metrics" | sed 's/^/    /'
    grep -Eq '^stepkit_runs_completed_total\{workflow="say-hi"\} [1-9]' "$tmp/metrics" ||
        die "/metrics does not count the say-hi run"
fi

if [ ${#http_args[@]} -gt 0 ]; then
    say "5. database down: /readyz 503 with the reason, /livez stays 200; back up: ready again"
    tests/pg-cluster.sh stop "$pgdir" 2>/dev/null
    code=""
    for _ in $(seq 1 150); do
        code=$(curl -s -o "$tmp/readyz" -w '%{http_code}' "http://127.0.0.1:$http_port/readyz" || true)
        [ "$code" = 503 ] && break
        sleep 0.2
    done
    echo "    /readyz: $code $(cat "$tmp/readyz" 2>/dev/null)"
    [ "$code" = 503 ] || die "/readyz stays $code with the database down"
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/livez")
    echo "    /livez: $code"
    [ "$code" = 200 ] || die "/livez follows the database ($code)"
    tests/pg-cluster.sh start "$pgdir" >/dev/null 2>&1
    for _ in $(seq 1 150); do
        code=$(curl -s -o "$tmp/readyz" -w '%{http_code}' "http://127.0.0.1:$http_port/readyz" || true)
        [ "$code" = 200 ] && break
        sleep 0.2
    done
    echo "    /readyz: $code $(cat "$tmp/readyz" 2>/dev/null)"
    [ "$code" = 200 ] || die "/readyz does not recover after the database is back"
fi

say "6. SIGTERM: drain and exit 0"
# $master_pid is the subshell; below it unshare, below that the master (PID 1 of its namespace,
# so only the signals it handles reach it, as in a container).
upid=$(pgrep -P "$master_pid" -x unshare | head -1)
mpid=$(pgrep -P "$upid" | head -1)
[ -n "$mpid" ] || die "no master process under unshare"
kill -TERM "$mpid"
rc=0
wait "$master_pid" || rc=$?
master_pid=""
grep -E 'event=(state|stop)' "$tmp/master.log" | tail -4 | sed 's/^/    /'
[ "$rc" = 0 ] || { cat "$tmp/master.log" >&2; die "the master exited $rc"; }
if grep 'level=error' "$tmp/master.log" | grep -v 'event=conn_setup_failed'; then
    die "error lines in the master's log"
fi
say "PASSED: migrate, master as uid ${user%%:*} on a read-only root, say-hi completed, probes, clean drain"
