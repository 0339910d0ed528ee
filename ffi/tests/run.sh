#!/usr/bin/env bash
# Build and run the C/C++ suite against the already built libconverge
# (called by `make test-c`; see ffi/ffi.mk for the variables).
#
#   run.sh <libdir> <out dir> <expected version>
#
# 1. the C test program, compiled as C11 and as C++17, each linked against
#    the shared and the static library;
# 2. the C program under ASan+UBSan (shared library);
# 3. the C program under valgrind (shared library);
# 4. the C++ wrapper test: two translation units (ODR), shared and under
#    ASan+UBSan;
# 5. the examples, their output compared with ffi/examples/cart.expected.
# First, the C examples docs/C_API.md shows (a sync message loop, session
# tokens, push replication from a cursor) must be the code compiled in
# c/test_sync_loop.c, c/test_tokens.c and c/test_delivery.c (between their
# EXAMPLE markers).
set -euo pipefail

libdir=$1
out=$2
version=$3
here=$(cd "$(dirname "$0")" && pwd)
ffi=$(dirname "$here")
inc=$(dirname "$ffi")/include
CC=${CC:-gcc}
CXX=${CXX:-g++}
# What the static library needs: `cargo rustc -p converge-ffi --lib --
# --print native-static-libs`.
static_libs="-lstdc++ -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
shared="-L$libdir -lconverge -Wl,-rpath,$libdir"
static="$libdir/libconverge.a $static_libs"
warn="-Wall -Wextra -Werror"
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
c_tests=("$here"/c/*.c)
define="-DCVG_EXPECTED_VERSION=\"$version\""

rm -rf "$out"
mkdir -p "$out/bin"
step() { printf '== %s\n' "$*"; }

docs=$(dirname "$ffi")/docs/C_API.md
for example in test_sync_loop.c test_tokens.c test_delivery.c; do
  step "docs: the example of docs/C_API.md from c/$example is the one compiled here"
  # The ```c block after the marker comment in the docs, and the lines
  # between the markers in the test file.
  awk -v marker="<!-- example: ffi/tests/c/$example -->" '
       $0 == marker { seen = 1; next }
       seen && !body && /^```c$/ { body = 1; next }
       body && /^```$/ { exit }
       body { print }' "$docs" > "$out/doc-example.c"
  sed -n '/^\/\* EXAMPLE BEGIN/,/^\/\* EXAMPLE END/p' "$here/c/$example" \
    | sed '1d;$d' > "$out/test-example.c"
  test -s "$out/doc-example.c"
  test -s "$out/test-example.c"
  diff -u "$out/doc-example.c" "$out/test-example.c"
done

# Run a program with a fresh, empty scratch directory as its argument.
run() {
  local dir
  dir=$(mktemp -d "$out/scratch.XXXXXX")
  "$@" "$dir"
  rm -rf "$dir"
}

step "compile: C11 and C++17, shared and static"
$CC -std=c11 $warn -g -pthread -I"$inc" $define "${c_tests[@]}" $shared -o "$out/bin/c-shared"
$CC -std=c11 $warn -g -pthread -I"$inc" $define "${c_tests[@]}" $static -o "$out/bin/c-static"
$CXX -x c++ -std=c++17 $warn -g -pthread -I"$inc" $define "${c_tests[@]}" -x none $shared -o "$out/bin/cxx-shared"
$CXX -x c++ -std=c++17 $warn -g -pthread -I"$inc" $define "${c_tests[@]}" -x none $static -o "$out/bin/cxx-static"
$CC -std=c11 $warn -g -pthread $sanitize -I"$inc" $define "${c_tests[@]}" $shared -o "$out/bin/c-asan"
$CXX -std=c++17 $warn -g -pthread -I"$inc" "$here"/cpp/wrapper_a.cpp "$here"/cpp/wrapper_b.cpp $shared -o "$out/bin/wrapper"
$CXX -std=c++17 $warn -g -pthread $sanitize -I"$inc" "$here"/cpp/wrapper_a.cpp "$here"/cpp/wrapper_b.cpp $shared -o "$out/bin/wrapper-asan"
$CC -std=c11 $warn -I"$inc" "$ffi"/examples/cart.c $shared -o "$out/bin/cart"
$CXX -std=c++17 $warn -I"$inc" "$ffi"/examples/cart.cpp $static -o "$out/bin/cart-cpp"

for v in c-shared c-static cxx-shared cxx-static; do
  step "run: $v"
  run "$out/bin/$v"
done

# ASan's leak checker is on (the default on Linux): leaks fail the run.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
step "run: c-asan (AddressSanitizer + UndefinedBehaviorSanitizer)"
run "$out/bin/c-asan"
step "run: wrapper-asan"
run "$out/bin/wrapper-asan"
unset ASAN_OPTIONS UBSAN_OPTIONS

step "run: c-shared under valgrind"
# --fair-sched: the threads section spins on locks and crawls without it.
# RocksDB keeps "still reachable" static allocations: only definite and
# indirect leaks count. Valgrind's note on an fcntl it does not model
# (F_SETPIPE_SZ-style 1036 from RocksDB) is filtered out.
run valgrind -q --fair-sched=yes --leak-check=full \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
  "$out/bin/c-shared" 2> >(grep -v 'unimplemented fcntl command' >&2)

step "run: wrapper (two translation units)"
run "$out/bin/wrapper"

for ex in cart cart-cpp; do
  step "run: example $ex"
  dir=$(mktemp -d "$out/scratch.XXXXXX")
  "$out/bin/$ex" "$dir" > "$out/$ex.out"
  rm -rf "$dir"
  diff -u "$ffi/examples/cart.expected" "$out/$ex.out"
done
step "C/C++ suite passed"
