#!/bin/sh
# fetch_litert.sh DIR -- make sure DIR holds the LiteRT.js WebAssembly runtime
# (npm @litertjs/core@2.5.3: LiteRT with the XNNPACK CPU delegate compiled to wasm)
# and print the absolute path of its package directory on stdout (give it to
# run_litert.mjs --pkg).  Exits non-zero with a one-line reason on stderr.
set -u
PKG=@litertjs/core@2.5.3

die() { echo "fetch_litert.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: fetch_litert.sh DIR"
mkdir -p "$1" || die "cannot create directory $1"
DIR=$(cd "$1" && pwd -P) || die "cannot enter directory $1"
CORE=$DIR/node_modules/@litertjs/core

if [ ! -f "$CORE/wasm/litert_wasm_compat_internal.wasm" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found in PATH"
    LOG=$DIR/npm-install.log
    if ! npm install --prefix "$DIR" --no-audit --no-fund --ignore-scripts "$PKG" >"$LOG" 2>&1; then
        die "npm install $PKG failed ($(grep -m1 -i 'err' "$LOG" || echo "see $LOG"))"
    fi
    [ -f "$CORE/dist/index.js" ] || die "npm installed $PKG but $CORE/dist/index.js is missing"
fi
echo "$CORE"
