#!/usr/bin/env bash
# The Containerfile and `make image` must produce the same image layout.
# Without running Docker: the Containerfile's instructions are read and
# compared with deploy/image/image.env (what `make image` writes into the OCI
# config), its build stage is replayed (stage.sh into a scratch directory,
# as `RUN ... deploy/image/stage.sh build /stage` + `COPY --from=build
# /stage/ /` do), and when BUILD/image exists (after `make image`) the
# replayed files and the user's home are compared with the built root
# filesystem's list, and the OCI config with the Containerfile's.
#
#   tests/image/check-layout.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
# shellcheck source=deploy/image/image.env
. deploy/image/image.env
cf=Containerfile
fails=0
ok() { echo "layout: ok   $*"; }
bad() { echo "layout: FAIL $*" >&2; fails=$((fails + 1)); }
same() { # same WHAT EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then ok "$1: $3"; else bad "$1: Containerfile/image '$3', image.env '$2'"; fi
}

# The runtime stage: everything after the last FROM, continuation lines joined.
runtime=$(awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$cf" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
directive() { printf '%s\n' "$runtime" | sed -n "s/^$1 //p" | tail -1; }

same USER "$IMAGE_UID:$IMAGE_GID" "$(directive USER)"
same WORKDIR "$IMAGE_WORKDIR" "$(directive WORKDIR)"
same ENTRYPOINT "[\"$IMAGE_ENTRYPOINT\"]" "$(directive ENTRYPOINT)"
same EXPOSE "$IMAGE_PORT/tcp" "$(directive EXPOSE)"
same 'ENV STEPKIT_WORKFLOWS' "STEPKIT_WORKFLOWS=$IMAGE_WORKFLOWS" "$(directive ENV)"
same STOPSIGNAL SIGTERM "$(directive STOPSIGNAL)"
same 'FROM (runtime)' 'debian:bookworm-slim' "$(printf '%s\n' "$runtime" | sed -n 's/^FROM //p')"
same 'COPY' '--from=build /stage/ /' "$(directive COPY)"
grep -q 'deploy/image/stage.sh build /stage' "$cf" && ok "build stage runs deploy/image/stage.sh build /stage" ||
    bad "the build stage does not run 'deploy/image/stage.sh build /stage'"

# The user: useradd/groupadd with the same ids and home.
useradd=$(printf '%s\n' "$runtime" | grep -o 'useradd [^&]*' | tr -s ' ')
same 'useradd uid' "$IMAGE_UID" "$(sed -n 's/.*--uid \([0-9]*\).*/\1/p' <<<"$useradd")"
same 'useradd gid' "$IMAGE_GID" "$(sed -n 's/.*--gid \([0-9]*\).*/\1/p' <<<"$useradd")"
same 'useradd home' "$IMAGE_WORKDIR" "$(sed -n 's/.*--home-dir \([^ ]*\).*/\1/p' <<<"$useradd")"
same 'useradd name' "$IMAGE_USER" "$(awk '{print $NF}' <<<"$useradd")"
same 'groupadd' "--gid $IMAGE_GID $IMAGE_USER" "$(printf '%s\n' "$runtime" | grep -o 'groupadd [^&]*' | sed 's/^groupadd //; s/ *$//')"

# The runtime packages: the same set as mmdebstrap's --include.
cf_pkgs=$(printf '%s\n' "$runtime" | grep -o 'install -y --no-install-recommends [^&]*' |
    sed 's/install -y --no-install-recommends//' | tr -s ' ' '\n' | grep -v '^$' | LC_ALL=C sort | tr '\n' ' ')
env_pkgs=$(tr ',' '\n' <<<"$IMAGE_PACKAGES" | LC_ALL=C sort | tr '\n' ' ')
same 'runtime packages' "$env_pkgs" "$cf_pkgs"
if printf '%s\n' "$runtime" | grep -Eq '\b(gcc|make|libc6-dev|[a-z0-9-]+-dev)\b'; then
    bad "the runtime stage installs a compiler or headers"
else
    ok "runtime stage: no compiler, no -dev package"
fi

# Replay the build stage's stage.sh + COPY: the files the Containerfile adds.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if [ -x "$build/bin/stepkit-master" ]; then
    deploy/image/stage.sh "$build" "$scratch/stage"
    # Files and links only: debian:bookworm-slim already has the usual empty /usr/local/* directories.
    (cd "$scratch/stage" && find usr/local ! -type d -printf '%M root:root %p\n' | LC_ALL=C sort -k3) >"$scratch/cf-files.txt"
    echo "layout: Containerfile adds $(wc -l <"$scratch/cf-files.txt") paths under /usr/local"
    if [ -s "$build/image/files.txt" ]; then
        grep -v '^d' "$build/image/files.txt" | grep ' usr/local' >"$scratch/img-files.txt"
        if diff -u "$scratch/img-files.txt" "$scratch/cf-files.txt"; then
            ok "files under /usr/local: identical ($(wc -l <"$scratch/img-files.txt") paths)"
        else
            bad "files under /usr/local differ (above: - make image, + Containerfile)"
        fi
        home=$(grep " ${IMAGE_WORKDIR#/}\$" "$build/image/files.txt" | awk '{print $2}')
        same 'home owner in make image' "$IMAGE_UID:$IMAGE_GID" "$home"
        cfg=$build/image/config.json
        same 'OCI User' "$(directive USER)" "$(jq -r .config.User "$cfg")"
        same 'OCI WorkingDir' "$(directive WORKDIR)" "$(jq -r .config.WorkingDir "$cfg")"
        same 'OCI Entrypoint' "$(directive ENTRYPOINT)" "$(jq -c .config.Entrypoint "$cfg")"
        same 'OCI ExposedPorts' "$(directive EXPOSE)" "$(jq -r '.config.ExposedPorts | keys[0]' "$cfg")"
        same 'OCI Env' "$(directive ENV)" "$(jq -r '.config.Env[] | select(startswith("STEPKIT_"))' "$cfg")"
        same 'OCI StopSignal' "$(directive STOPSIGNAL)" "$(jq -r .config.StopSignal "$cfg")"
    else
        echo "layout: no $build/image/files.txt (run make image to compare with the built image too)"
    fi
else
    bad "$build/bin/stepkit-master is not built"
fi

if [ "$fails" -gt 0 ]; then
    echo "layout: $fails difference(s)" >&2
    exit 1
fi
echo "layout: Containerfile and make image agree"
