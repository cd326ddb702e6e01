#!/bin/sh
# Builds the newcomer examples against an installed libaibox, the way a user
# would, through pkg-config: once linked with the shared library (aibox) and
# once with the static one (aibox-static), into OUT/shared and OUT/static.
#   sh examples/build-installed.sh STAGE OUT     (STAGE: a DESTDIR install with PREFIX=/usr)
# `make check` runs it on a staged install; tests/examples checks the programs
# (and trains and classifies with the staged tools).
set -e
stage=$1 out=$2
mkdir -p "$out/shared" "$out/static"
export PKG_CONFIG_PATH="$stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
cc=${CC:-cc}
for ex in classify train_folder padim; do
  # shared: found at run time in the staged tree (rpath), as /usr/lib would be after a real install
  $cc -std=c11 -Wall -Wextra -O2 "examples/$ex.c" -o "$out/shared/$ex" $(pkg-config --cflags --libs aibox) \
    -Wl,-rpath,"$stage/usr/lib"
  $cc -std=c11 -Wall -Wextra -O2 "examples/$ex.c" -o "$out/static/$ex" $(pkg-config --cflags --libs aibox-static)
done
# the static programs must not load libaibox.so, the shared ones must load the staged one
for ex in classify train_folder padim; do
  ! ldd "$out/static/$ex" | grep -q libaibox || { echo "build-installed: $out/static/$ex loads libaibox.so" >&2; exit 1; }
  ldd "$out/shared/$ex" | grep -q "$stage/usr/lib/libaibox.so.[0-9]" ||
    { echo "build-installed: $out/shared/$ex does not load the staged libaibox.so" >&2; exit 1; }
done
# the installed tools run from the stage (statically linked: no library path
# needed) and report the installed library's version; their pages are there
version=$(pkg-config --modversion aibox)
for t in aibox-train aibox-infer aibox-import aibox-bench aibox-quantize; do
  v=$("$stage/usr/bin/$t" --version | head -1)
  [ "$v" = "$t $version" ] || { echo "build-installed: $stage/usr/bin/$t --version says '$v', not '$t $version'" >&2; exit 1; }
  "$stage/usr/bin/$t" --help | grep -q "^usage: $t" || { echo "build-installed: $t --help prints no usage" >&2; exit 1; }
  [ -f "$stage/usr/share/man/man1/$t.1" ] || { echo "build-installed: no man page $t.1 in the stage" >&2; exit 1; }
done
[ -f "$stage/usr/share/man/man3/libaibox.3" ] || { echo "build-installed: no man page libaibox.3 in the stage" >&2; exit 1; }
echo "build-installed: the staged aibox-train, -infer, -import, -bench, -quantize run (--version $version, --help)" >&2
echo "build-installed: classify, train_folder, padim built against $stage with pkg-config (shared and static)" >&2
