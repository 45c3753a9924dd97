#!/bin/sh
# Builds and runs the native C tests (native/tests/test_flipcall.c, then
# test_fdtable.c and test_nodes.c).
#
#   bash native/tests/run.sh              host compiler (${CC:-cc}), run natively
#   ARCH=arm64 bash native/tests/run.sh   aarch64-linux-gnu-gcc -static, run
#                                         under qemu-aarch64 (Debian packages
#                                         gcc-aarch64-linux-gnu, qemu-user)
#   bash native/tests/run.sh bench        round-trip timings instead of tests
#
# Extra arguments go to the test binary. GOFER_TEST_ROUNDS sets the number of
# ping-pong round trips (default 20000).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
native=$(dirname "$here")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

case "${ARCH:-native}" in
native | host | "")
    cc=${CC:-cc}
    extra=""
    runner=""
    ;;
arm64 | aarch64)
    cc=${CROSS_CC:-aarch64-linux-gnu-gcc}
    extra="-static"
    runner=${QEMU:-qemu-aarch64}
    ;;
*)
    echo "run.sh: unknown ARCH '${ARCH}' (use native or arm64)" >&2
    exit 2
    ;;
esac

# shellcheck disable=SC2086  # $extra is empty or one flag
"$cc" -O2 -Wall -Werror -std=c11 -pthread $extra -I"$native" \
    -o "$out/test_flipcall" \
    "$here/test_flipcall.c" "$native/flipcall.c" "$native/fdchannel.c" "$native/spin.c"
"$cc" -O2 -Wall -Werror -std=c11 -pthread $extra -I"$native" \
    -o "$out/test_fdtable" "$here/test_fdtable.c" "$native/fdtable.c"
# With AddressSanitizer where the compiler has it (not static, not arm64).
asan=""
if [ -z "$runner" ] && echo 'int main(void){return 0;}' |
    "$cc" -fsanitize=address -x c -o "$out/asan" - 2>/dev/null; then
    asan="-fsanitize=address"
fi
# shellcheck disable=SC2086
"$cc" -O2 -Wall -Werror -std=c11 -pthread $extra $asan -I"$native" \
    -o "$out/test_nodes" "$here/test_nodes.c" "$native/nodes.c"

echo "run.sh: built with $cc${extra:+ $extra}${runner:+, running under $runner}"
if [ -n "$runner" ]; then
    export GOFER_TEST_QEMU=1
fi
# Not exec: the EXIT trap must still remove the build directory.
# shellcheck disable=SC2086
$runner "$out/test_flipcall" "$@"
[ "${1:-}" = bench ] || { $runner "$out/test_fdtable" && $runner "$out/test_nodes"; }
