#!/bin/sh
# Installs the Debian packages named on the command line when any is missing.
# Needs root (or sudo) only when something is missing. A name ending in :arm64
# (the cross build's libraries) first enables that foreign architecture
# (dpkg --add-architecture arm64), which a fresh machine lacks.
missing=""
foreign=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
for p in $missing; do
  case $p in *:*) a=${p##*:}
    [ "$a" = "$(dpkg --print-architecture)" ] || dpkg --print-foreign-architectures | grep -qx "$a" ||
      case " $foreign " in *" $a "*) ;; *) foreign="$foreign $a";; esac;;
  esac
done
for a in $foreign; do
  echo "install-deps: dpkg --add-architecture $a" >&2
  $SUDO dpkg --add-architecture "$a" || { echo "install-deps: could not add architecture $a" >&2; exit 1; }
done
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || { echo "install-deps: apt-get update failed" >&2; exit 1; }
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2 || { echo "install-deps: could not install$missing" >&2; exit 1; }
