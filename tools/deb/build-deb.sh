#!/bin/sh
# Builds the Debian packages of libaibox from this tree into BUILD/deb:
#   libaibox<ABI>_<VERSION>-1_<ARCH>.deb   the shared library (named after its
#                                          SONAME libaibox.so.<ABI>, Debian policy 8.1)
#   libaibox-dev_<VERSION>-1_<ARCH>.deb    headers, libaibox.a, the libaibox.so link,
#                                          aibox.pc, aibox-static.pc, libaibox(3)
#   aibox-tools_<VERSION>-1_<ARCH>.deb     the aibox-* tools and their pages
# and runs lintian on each.
#   sh tools/deb/build-deb.sh BUILD ARCH VERSION ABI "MAKE-COMMAND"
# `make deb` / `make deb ARCH=arm64` call it (MAKE-COMMAND: make with the same
# ARCH and BUILD, used for the staged install).
#
# Why dpkg-deb on a staged `make install` rather than a debian/ folder and
# dpkg-buildpackage: the Makefile already builds both architectures
# (ARCH=arm64 is its cross build), and the packages should hold exactly what
# that build and `make install` produce, tested by `make check`. With
# dpkg-buildpackage the build would run a second time under debhelper's own
# flags and, for arm64, its cross-build conventions (-a arm64, the build
# profile, DEB_HOST_* variables mapped onto CC), i.e. a different build from
# the one we test. Here the same few steps serve both architectures: stage,
# split into three trees, strip with the target's strip, compress the pages,
# compute Depends with dpkg-shlibdeps (a throw-away debian/control in a
# temporary folder; DEB_HOST_ARCH selects the :arm64 libraries), write
# DEBIAN/control, md5sums, shlibs and the ldconfig trigger, and build with
# dpkg-deb --root-owner-group (no fakeroot needed).
set -eu
build=$1 arch=$2 version=$3 abi=$4 make_cmd=$5
here=$(cd "$(dirname "$0")" && pwd)
debver=$version-1
maintainer="libaibox maintainers <maintainers@users.noreply.h-seed-924f58b6.example>"
out=$build/deb
work=$out/tmp
rm -rf "$out"
mkdir -p "$work"
out=$(cd "$out" && pwd) work=$(cd "$work" && pwd)
umask 022
# the package contents carry the time of the release commit, not of the build
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

multiarch=$(dpkg-architecture -a"$arch" -qDEB_HOST_MULTIARCH 2>/dev/null)
gnu=$(dpkg-architecture -a"$arch" -qDEB_HOST_GNU_TYPE 2>/dev/null)
strip=strip
[ "$arch" = "$(dpkg --print-architecture)" ] || strip=$gnu-strip
libdir=/usr/lib/$multiarch

# 1. the staged install, as a user's `make install PREFIX=/usr` would lay it out
stage=$work/stage
$make_cmd install DESTDIR="$stage" PREFIX=/usr LIBDIR="$libdir" >/dev/null

# 2. three trees
lib=$work/libaibox$abi dev=$work/libaibox-dev tools=$work/aibox-tools
mkdir -p "$lib$libdir" "$dev$libdir" "$dev/usr/share/man" "$tools/usr/share/man"
mv "$stage$libdir/libaibox.so.$abi" "$lib$libdir/"
mv "$stage$libdir/libaibox.so" "$stage$libdir/libaibox.a" "$stage$libdir/pkgconfig" "$dev$libdir/"
mv "$stage/usr/include" "$dev/usr/"
mv "$stage/usr/share/man/man3" "$dev/usr/share/man/"
mv "$stage/usr/bin" "$tools/usr/"
mv "$stage/usr/share/man/man1" "$tools/usr/share/man/"
left=$(cd "$stage" && find . ! -type d)
[ -z "$left" ] || { echo "build-deb: installed but in no package: $left" >&2; exit 1; }

# 3. strip as dh_strip does; compress the pages (policy 12.1)
$strip --remove-section=.comment --remove-section=.note --strip-unneeded "$lib$libdir/libaibox.so.$abi" "$tools"/usr/bin/*
$strip --strip-debug --remove-section=.comment --remove-section=.note --enable-deterministic-archives "$dev$libdir/libaibox.a"
chmod 644 "$lib$libdir/libaibox.so.$abi"   # policy 8.1: shared libraries are not executable
gzip -9n "$dev"/usr/share/man/man3/* "$tools"/usr/share/man/man1/*

# 4. Depends of the ELF files, from their NEEDED entries and the shlibs of the
# packages that hold those libraries (the target architecture's)
mkdir -p "$work/shlibdeps/debian"
printf 'Source: libaibox\n\nPackage: libaibox%s\nArchitecture: any\n' "$abi" >"$work/shlibdeps/debian/control"
shlibdeps() {
  (cd "$work/shlibdeps" && DEB_HOST_ARCH=$arch dpkg-shlibdeps -O "$@" 2>"$work/shlibdeps.log") |
    sed -n 's/^shlibs:Depends=//p'
}
lib_depends=$(shlibdeps "$lib$libdir/libaibox.so.$abi")
tools_depends=$(shlibdeps "$tools"/usr/bin/*)
[ -n "$lib_depends" ] && [ -n "$tools_depends" ] ||
  { cat "$work/shlibdeps.log" >&2; echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

# 5. DEBIAN/ and the documentation of each package
for pkg in libaibox$abi libaibox-dev aibox-tools; do
  root=$work/$pkg
  doc=$root/usr/share/doc/$pkg
  mkdir -p "$doc" "$root/DEBIAN"
  sed "s|@MAINTAINER@|$maintainer|" "$here/copyright" >"$doc/copyright"
  sed "s|@MAINTAINER@|$maintainer|" "$here/changelog" | gzip -9n >"$doc/changelog.Debian.gz"
  # built from the tree, not uploaded to Debian: there is no ITP bug to close
  mkdir -p "$root/usr/share/lintian/overrides"
  echo "$pkg: initial-upload-closes-no-bugs" >"$root/usr/share/lintian/overrides/$pkg"
  case $pkg in
    libaibox-dev) template=control.libaibox-dev depends="" ;;
    aibox-tools) template=control.aibox-tools depends=$tools_depends ;;
    *) template=control.libaibox depends=$lib_depends
       echo "libaibox $abi libaibox$abi (>= $version)" >"$root/DEBIAN/shlibs"
       echo "activate-noawait ldconfig" >"$root/DEBIAN/triggers" ;;
  esac
  find "$root" -path "$root/DEBIAN" -prune -o -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
    >"$root/DEBIAN/md5sums"
  size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
  sed -e "s|@ABI@|$abi|g" -e "s|@DEBVERSION@|$debver|g" -e "s|@ARCH@|$arch|g" -e "s|@MAINTAINER@|$maintainer|g" \
    -e "s|@SIZE@|$size|g" -e "s/@DEPENDS@/$depends/g" "$here/$template" >"$root/DEBIAN/control"
  chmod 644 "$root"/DEBIAN/*
  dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${pkg}_${debver}_$arch.deb" >/dev/null
done

# 6. the result, and what lintian says of it
cd "$out"
rm -rf "$work"
for d in *.deb; do
  printf '%s  %s bytes\n' "$d" "$(stat -c %s "$d")"
  dpkg-deb -f "$d" Depends | sed 's/^/  Depends: /'
done
if command -v lintian >/dev/null; then
  echo "lintian:"
  lintian --fail-on error *.deb
  echo "lintian: no errors"
fi
