#!/bin/sh
# Installs StepKit's runtime files into DESTDIR the way the image lays them out,
# from an existing build.  Used by `make image` and by the Containerfile's
# build stage, so both images carry the same files.
#
#   deploy/image/stage.sh BUILD DESTDIR
#
# Layout (PREFIX=/usr/local):
#   bin/stepkit-master bin/stepkit          the daemon and the client
#   lib/libstepkit.so.0 (+ libstepkit.so)   the shared runtime
#   lib/stepkit/examples.so                 the example workflow library
#   share/stepkit/sql/NNN_*.sql             the migrations (also embedded)
# Headers and the pkg-config file stay out: the image runs, it does not build.
set -eu
build=${1:?usage: stage.sh BUILD DESTDIR}
dest=${2:?usage: stage.sh BUILD DESTDIR}
cd "$(dirname "$0")/../.."
make --no-print-directory -s BUILD="$build" PREFIX=/usr/local DESTDIR="$dest" install >/dev/null
rm -rf "$dest/usr/local/include" "$dest/usr/local/lib/pkgconfig"
# Debug info is for the build machine, not the image.
for f in "$dest/usr/local/bin/"* "$dest/usr/local/lib/libstepkit.so.0" "$dest/usr/local/lib/stepkit/"*.so; do
    strip --strip-unneeded "$f"
done
