#!/usr/bin/env bash
# `make image`: a minimal OCI image of StepKit built from Debian packages only.
#
#   deploy/image/build-image.sh BUILD
#
# 1. base: mmdebstrap --variant=extract unpacks the runtime libraries of
#    image.env (and what they depend on) from Debian's archive: no shell, no
#    package manager, no compiler.  Cached in BUILD/image/base-<hash>.tar by
#    package list, because it is the slow part (minutes).
# 2. rootfs: the base, docs and locales trimmed (copyright files kept), the
#    ld.so cache, /etc/passwd and /etc/group with the non-root user, a
#    writable /tmp, and StepKit's files from stage.sh.
# 3. BUILD/stepkit-image.oci.tar: an OCI image layout (one gzip layer, the
#    config with user, entrypoint, environment, port), written here with tar,
#    sha256sum and jq, then loaded into podman when podman is installed.
#
# Output: BUILD/image/rootfs/ (what the chroot test runs), BUILD/image/files.txt
# (the layout check's input), BUILD/stepkit-image.oci.tar.
set -euo pipefail

say() { echo "image: $*"; }
die() { echo "image: error: $*" >&2; exit 1; }

cd "$(dirname "$0")/../.."
build=${1:-build}
# shellcheck source=deploy/image/image.env
. deploy/image/image.env
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (deploy/install-deps.sh image)"
command -v jq >/dev/null || die "jq is missing"
[ -x "$build/bin/stepkit-master" ] || die "$build/bin/stepkit-master is not built (make)"

work=$build/image
mkdir -p "$work"
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$epoch

# ---- 1. the Debian base ----------------------------------------------------------
key=$(printf '%s bookworm amd64 extract' "$IMAGE_PACKAGES" | sha256sum | cut -c1-16)
base=$work/base-$key.tar
if [ ! -s "$base" ]; then
    say "mmdebstrap bookworm: $IMAGE_PACKAGES (a few minutes; cached as $base)"
    mmdebstrap --quiet --variant=extract --mode=root --format=tar \
        --include="$IMAGE_PACKAGES" bookworm "$base.tmp" http://deb.debian.org/debian
    mv "$base.tmp" "$base"
else
    say "reusing $base"
fi

# ---- 2. the root filesystem ---------------------------------------------------------
rootfs=$work/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"
tar -C "$rootfs" -xf "$base"
# Documentation, manuals and translations: kept only the copyright files.
find "$rootfs/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
find "$rootfs/usr/share/doc" -type l -delete 2>/dev/null || true
rm -rf "$rootfs/usr/share/man" "$rootfs/usr/share/info" "$rootfs/usr/share/locale" \
    "$rootfs/usr/share/lintian" "$rootfs/usr/share/bug" "$rootfs/var/cache/apt" \
    "$rootfs/var/lib/apt/lists" "$rootfs/var/log/"*
find "$rootfs/usr/share/doc" -type d -empty -delete 2>/dev/null || true
mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs$IMAGE_WORKDIR"
chmod 1777 "$rootfs/tmp"
cat >"$rootfs/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
$IMAGE_USER:x:$IMAGE_UID:$IMAGE_GID:StepKit:$IMAGE_WORKDIR:/usr/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<GROUP
root:x:0:
nogroup:x:65534:
$IMAGE_USER:x:$IMAGE_GID:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$rootfs/etc/hosts"
chown "$IMAGE_UID:$IMAGE_GID" "$rootfs$IMAGE_WORKDIR"
deploy/image/stage.sh "$build" "$rootfs"
# libstepkit through the ld.so cache too, not only the binaries' $ORIGIN runpath (which
# glibc resolves through /proc/self/exe: a chroot without /proc would miss it).
printf '/usr/local/lib\n' >"$rootfs/etc/ld.so.conf"
ldconfig -r "$rootfs"
# Every library the binaries need must be in the image (ldd against the rootfs).
for f in usr/local/bin/stepkit-master usr/local/bin/stepkit usr/local/lib/stepkit/examples.so; do
    missing=$(chroot "$rootfs" /lib64/ld-linux-x86-64.so.2 --list "/$f" 2>&1 | grep 'not found' || true)
    [ -z "$missing" ] || die "$f: $missing"
done

# The StepKit part of the layout, which the Containerfile must reproduce.
(cd "$rootfs" && find usr/local "${IMAGE_WORKDIR#/}" -printf '%M %u:%g %p\n' | LC_ALL=C sort -k3) \
    >"$work/files.txt"
say "root filesystem: $(du -sh --apparent-size "$rootfs" | cut -f1) in $rootfs"

# ---- 3. the OCI image layout ------------------------------------------------------------
oci=$work/oci
rm -rf "$oci"
mkdir -p "$oci/blobs/sha256"
layer_tmp=$work/layer.tar
tar -C "$rootfs" --sort=name --numeric-owner --mtime="@$epoch" --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -cf "$layer_tmp" .
diff_id=$(sha256sum "$layer_tmp" | cut -d' ' -f1)
gzip -n -6 <"$layer_tmp" >"$layer_tmp.gz"
rm -f "$layer_tmp"
layer_digest=$(sha256sum "$layer_tmp.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$layer_tmp.gz")
mv "$layer_tmp.gz" "$oci/blobs/sha256/$layer_digest"

created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
jq -n --arg created "$created" --arg user "$IMAGE_UID:$IMAGE_GID" --arg ep "$IMAGE_ENTRYPOINT" \
    --arg wd "$IMAGE_WORKDIR" --arg port "$IMAGE_PORT/tcp" --arg wf "$IMAGE_WORKFLOWS" \
    --arg diff "sha256:$diff_id" --arg ver "$IMAGE_TAG" '{
    created: $created, architecture: "amd64", os: "linux",
    config: {
        User: $user,
        Entrypoint: [$ep],
        Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "STEPKIT_WORKFLOWS=" + $wf],
        WorkingDir: $wd,
        ExposedPorts: {($port): {}},
        StopSignal: "SIGTERM",
        Labels: {"org.opencontainers.image.title": "stepkit",
                 "org.opencontainers.image.version": $ver,
                 "org.opencontainers.image.description": "StepKit durable workflow engine (master + workers)"}
    },
    rootfs: {type: "layers", diff_ids: [$diff]},
    history: [{created: $created, created_by: "deploy/image/build-image.sh (mmdebstrap bookworm + stage.sh)"}]
}' >"$work/config.json"
config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
cp "$work/config.json" "$oci/blobs/sha256/$config_digest"
jq -n --arg cd "sha256:$config_digest" --argjson cs "$(stat -c %s "$work/config.json")" \
    --arg ld "sha256:$layer_digest" --argjson ls "$layer_size" '{
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
    layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]
}' >"$work/manifest.json"
manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
cp "$work/manifest.json" "$oci/blobs/sha256/$manifest_digest"
jq -n --arg md "sha256:$manifest_digest" --argjson ms "$(stat -c %s "$work/manifest.json")" \
    --arg ref "$IMAGE_NAME:$IMAGE_TAG" '{
    schemaVersion: 2,
    manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $md, size: $ms,
                 annotations: {"org.opencontainers.image.ref.name": $ref}}]
}' >"$oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
out=$build/stepkit-image.oci.tar
tar -C "$oci" --sort=name --numeric-owner --owner=0 --group=0 --mtime="@$epoch" -cf "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
say "OCI archive: $out ($(du -h --apparent-size "$out" | cut -f1) compressed layer $((layer_size / 1024)) KiB, image $IMAGE_NAME:$IMAGE_TAG)"

if command -v podman >/dev/null 2>&1; then
    podman load -i "$out" && say "loaded into podman as $IMAGE_NAME:$IMAGE_TAG"
elif command -v skopeo >/dev/null 2>&1; then
    say "skopeo copy oci-archive:$out containers-storage:$IMAGE_NAME:$IMAGE_TAG to import it"
fi
