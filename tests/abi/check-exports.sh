#!/bin/sh
# What libstepkit exports is its API: exactly the functions stepkit.h and
# stepkit_client.h declare.  And a workflow library loaded by the master calls
# the master's copy of the engine (the one with the worker's state), never the
# copy in the libstepkit.so it was linked against.
#   tests/abi/check-exports.sh BUILD
set -eu

build=${1:?usage: check-exports.sh BUILD}
lib=$build/lib/libstepkit.so
master=$build/bin/stepkit-master
wf=$build/examples/examples.so
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Declarations: comments stripped, macros left as they are (-fpreprocessed).
for h in shared/stepkit.h shared/stepkit_client.h; do
    gcc -fpreprocessed -dD -E -P "$h"
done | grep -v '^#' | grep -oE '\bsk_[a-z0-9_]+ *\(' | sed 's/ *($//' | sort -u >"$tmp/declared"
nm -D --defined-only "$lib" | awk '{print $3}' | sort -u >"$tmp/exported"
if ! diff -u "$tmp/declared" "$tmp/exported" >"$tmp/diff"; then
    echo "check-exports: $lib exports other than what the public headers declare (- declared, + exported):"
    grep '^[-+]sk_\|^[-+][a-z_]' "$tmp/diff" | grep -v '^[-+][-+]'
    exit 1
fi

# The master fails to connect (port 1) after it has loaded the library.
LD_DEBUG=bindings LD_DEBUG_OUTPUT="$tmp/ld" "$master" --workflows "$wf" \
    --database-url 'postgresql://127.0.0.1:1/none?connect_timeout=1' >/dev/null 2>&1 || true
cat "$tmp"/ld.* | grep "binding file $wf " | grep "normal symbol \`sk_" >"$tmp/bindings" || true
if [ ! -s "$tmp/bindings" ]; then
    echo "check-exports: the master bound none of $wf's sk_ symbols (LD_DEBUG output in $tmp/ld.*)"
    exit 1
fi
if grep -v " to $master \[0\]" "$tmp/bindings" >"$tmp/stray"; then
    echo "check-exports: symbols of $wf bound outside the master:"
    cat "$tmp/stray"
    exit 1
fi
echo "check-exports: libstepkit.so exports the $(wc -l <"$tmp/exported") declared functions and nothing else;" \
    "$(wc -l <"$tmp/bindings") calls of examples.so bind to the master"
