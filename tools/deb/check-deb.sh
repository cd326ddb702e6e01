#!/bin/sh
# Checks the Debian packages `make deb` builds, as a user meets them:
#   sh tools/deb/check-deb.sh AMD64_DEB_DIR [ARM64_DEB_DIR]
# (`make check-deb` builds both and runs this; not part of `make check`).
#
# This machine's packages (root or sudo): installed with dpkg -i, then
#  - man -w and man find the pages of aibox-infer(1) and libaibox(3);
#  - the installed tools run (--version, a --help);
#  - a small C program builds with `pkg-config --cflags --libs aibox` (and
#    aibox-static) against the installed package, loads the installed
#    libaibox.so.4 and runs;
# and removed again with dpkg -r (also when a check fails), so the machine
# stays as it was. Refuses to start when any of them is already installed.
# The arm64 packages: dpkg-deb -I / -c, their architecture and contents, then
# extracted into a temporary folder where the extracted aibox-infer runs under
# qemu-aarch64 (-L /: the :arm64 runtime libraries of this machine), and the
# same C program, cross-compiled against the extracted -dev package, runs with
# the extracted libaibox.so.4.
set -eu
amd=$1 arm=${2:-}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
tmp=$(mktemp -d /tmp/aibox_check_deb_XXXXXX)
pkgs="aibox-tools libaibox-dev libaibox4"
installed=0
cleanup() {
  if [ "$installed" = 1 ]; then
    echo "check-deb: dpkg -r $pkgs"
    $SUDO dpkg -r $pkgs >/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "check-deb: FAILED: $*" >&2; exit 1; }

# The external program: version, a tiny model built, run, and freed.
cat >"$tmp/hello.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <aibox.h>

int main(void)
{
    aibox_error err = {0};
    aibox_model *m = NULL;
    aibox_ctx *ctx = NULL;
    float x[2 * 4 * 4];
    for (int i = 0; i < 32; i++) x[i] = (float)i / 32;
    if (strcmp(aibox_version(), AIBOX_VERSION)) return fprintf(stderr, "header %s, library %s\n", AIBOX_VERSION, aibox_version()), 1;
    if (aibox_model_create(&m, 2, 4, 4, &err) || aibox_dense(m, aibox_flatten(m, 0), 3, 1) < 0 ||
        aibox_model_finish(m, 1, &err) || aibox_ctx_create(&ctx, m, NULL, &err) || aibox_ctx_infer(ctx, m, x, 1, &err))
        return fprintf(stderr, "hello: %s\n", err.msg), 1;
    int c, h, w;
    const float *y = aibox_ctx_output(ctx, &c, &h, &w);
    printf("libaibox %s: %zu parameters, %d outputs, y[0] = %.4f\n", aibox_version(), aibox_model_param_count(m), c * h * w, y[0]);
    aibox_ctx_free(&ctx);
    aibox_model_free(&m);
    return 0;
}
EOF

# ---------------------------------------------------------------- this machine
arch=$(dpkg --print-architecture)
for p in $pkgs; do
  ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    fail "$p is already installed here; remove it first (this check installs and removes it)"
done
debs=$(ls "$amd"/*_"$arch".deb)
echo "check-deb: dpkg -i $(echo $debs | tr '\n' ' ')"
installed=1
$SUDO dpkg -i $debs >/dev/null
dpkg-query -W -f='  ${Package} ${Version} ${Architecture}: ${Status}\n' $pkgs

page=$(man -w aibox-infer) || fail "man -w aibox-infer found nothing"
echo "  man -w aibox-infer: $page"
[ "$page" = /usr/share/man/man1/aibox-infer.1.gz ] || fail "aibox-infer's page is $page"
echo "  man -w 3 libaibox: $(man -w 3 libaibox)"
MANWIDTH=80 man aibox-infer 2>/dev/null | head -5 >"$tmp/man.txt"
sed 's/^/  | /' "$tmp/man.txt"
grep -q "AIBOX-INFER(1)" "$tmp/man.txt" || fail "man aibox-infer does not show the page"
MANWIDTH=80 man 3 libaibox 2>/dev/null | grep -q "pkg-config --cflags --libs aibox" || fail "man 3 libaibox"

v=$(/usr/bin/aibox-infer --version | head -1)
echo "  /usr/bin/aibox-infer --version: $v"
case $v in "aibox-infer $(pkg-config --modversion aibox)") ;; *) fail "aibox-infer --version: $v" ;; esac
for t in aibox-train aibox-infer aibox-import aibox-bench aibox-quantize; do
  /usr/bin/$t --help | grep -q "^usage: $t" || fail "$t --help"
done
/usr/bin/aibox-train padim --help | grep -q "^usage: aibox-train padim" || fail "aibox-train padim --help"
echo "  the five installed tools print their --help"

echo "  pkg-config --cflags --libs aibox: $(pkg-config --cflags --libs aibox)"
cc -std=c11 -Wall -Wextra -o "$tmp/hello" "$tmp/hello.c" $(pkg-config --cflags --libs aibox)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
ldd "$tmp/hello" | grep -Eq "libaibox.so.4 => (/usr)?/lib/$ma/libaibox.so.4 " ||
  fail "hello does not load the installed libaibox.so.4: $(ldd "$tmp/hello" | grep aibox)"
echo "  hello (shared): $("$tmp/hello")"
echo "  pkg-config --cflags --libs aibox-static: $(pkg-config --cflags --libs aibox-static)"
cc -std=c11 -Wall -Wextra -o "$tmp/hello_static" "$tmp/hello.c" $(pkg-config --cflags --libs aibox-static)
! ldd "$tmp/hello_static" | grep -q libaibox || fail "hello_static loads libaibox.so"
echo "  hello (static): $("$tmp/hello_static")"

installed=0
echo "check-deb: dpkg -r $pkgs"
$SUDO dpkg -r $pkgs >/dev/null
for p in $pkgs; do
  ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || fail "$p still installed"
done
! man -w aibox-infer >/dev/null 2>&1 || fail "aibox-infer's page is still there"
[ ! -e /usr/bin/aibox-infer ] || fail "/usr/bin/aibox-infer is still there"
echo "  removed: no package, page or tool left"

# ---------------------------------------------------------------- arm64
[ -n "$arm" ] || { echo "check-deb: amd64 packages OK (no arm64 folder given)"; exit 0; }
x=$tmp/arm64
mkdir -p "$x"
for d in "$arm"/*_arm64.deb; do
  echo "check-deb: $(basename "$d"): $(stat -c %s "$d") bytes"
  dpkg-deb -I "$d" | sed -n 's/^ \(Package\|Architecture\|Depends\|Multi-Arch\):/  \1:/p'
  [ "$(dpkg-deb -f "$d" Architecture)" = arm64 ] || fail "$d is not Architecture: arm64"
  dpkg-deb -c "$d" | awk '{print "    " $6 ($7 ? " " $7 " " $8 : "")}' | grep -v '/$'
  dpkg-deb -x "$d" "$x"
done
file -L "$x/usr/bin/aibox-infer" | grep -q "ARM aarch64" || fail "aibox-infer is not an aarch64 program"
file -L "$x/usr/lib/aarch64-linux-gnu/libaibox.so.4" | grep -q "ARM aarch64, .*stripped" || fail "libaibox.so.4"
qemu="qemu-aarch64 -U OPENBLAS_CORETYPE -L /"
v=$($qemu "$x/usr/bin/aibox-infer" --version | head -1)
echo "  qemu-aarch64 aibox-infer --version: $v"
case $v in "aibox-infer "[0-9]*) ;; *) fail "arm64 aibox-infer --version: $v" ;; esac
$qemu "$x/usr/bin/aibox-train" --help | grep -q "^usage: aibox-train" || fail "arm64 aibox-train --help"
echo "  qemu-aarch64 aibox-train --help: OK"
if command -v aarch64-linux-gnu-gcc >/dev/null; then
  flags=$(PKG_CONFIG_LIBDIR="$x/usr/lib/aarch64-linux-gnu/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$x" pkg-config --cflags --libs aibox)
  aarch64-linux-gnu-gcc -std=c11 -Wall -Wextra -o "$tmp/hello_arm64" "$tmp/hello.c" $flags
  echo "  hello (arm64, against the extracted libaibox-dev): $($qemu -E LD_LIBRARY_PATH="$x/usr/lib/aarch64-linux-gnu" "$tmp/hello_arm64")"
fi
echo "check-deb: amd64 and arm64 packages OK"
