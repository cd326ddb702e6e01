#!/bin/sh
# fetch.sh DIR -- make sure DIR holds TensorFlow Lite 2.9.0's C library (from the npm
# package tfjs-tflite-node@0.0.2, which ships it prebuilt under cc_deps/<os>_<arch>/)
# and print its absolute path on stdout.  Exits non-zero with a one-line reason on stderr.
#
# --ignore-scripts: the package's only install step is `node-gyp rebuild` of its Node
# addon (binding.gyp), which we do not need and which fails offline; the .so is in the
# tarball itself, nothing is downloaded at install time.
set -u
PKG=tfjs-tflite-node@0.0.2

die() { echo "fetch.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: fetch.sh DIR"
case $(uname -s)-$(uname -m) in
    Linux-x86_64|Linux-amd64) PLAT=linux_amd64 ;;
    Linux-aarch64|Linux-arm64) PLAT=linux_arm64 ;;
    *) die "no prebuilt libtensorflowlite_c.so in $PKG for $(uname -s)-$(uname -m)" ;;
esac

mkdir -p "$1" || die "cannot create directory $1"
DIR=$(cd "$1" && pwd -P) || die "cannot enter directory $1"
SO=$DIR/node_modules/tfjs-tflite-node/cc_deps/$PLAT/libtensorflowlite_c.so

if [ ! -f "$SO" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found in PATH"
    LOG=$DIR/npm-install.log
    if ! npm install --prefix "$DIR" --no-audit --no-fund --ignore-scripts "$PKG" >"$LOG" 2>&1; then
        die "npm install $PKG failed ($(grep -m1 -i 'err' "$LOG" || echo "see $LOG"))"
    fi
    [ -f "$SO" ] || die "npm installed $PKG but $SO is missing"
fi
echo "$SO"
