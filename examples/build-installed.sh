#!/bin/sh
# Builds the newcomer examples against an installed libaibox, the way a user
# would, through pkg-config: once linked with the shared library (aibox) and
# once with the static one (aibox-static), into OUT/shared and OUT/static.
#   sh examples/build-installed.sh STAGE OUT     (STAGE: a DESTDIR install with PREFIX=/usr)
# `make check` runs it on a staged install; tests/examples checks the programs.
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
echo "build-installed: classify, train_folder, padim built against $stage with pkg-config (shared and static)" >&2
