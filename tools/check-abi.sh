#!/bin/sh
# The shared library exports only aibox_ symbols and carries the SONAME on
# the major version. Usage: check-abi.sh build/libaibox.so.X.Y.Z MAJOR
lib=$1 major=$2
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\].*/\1/p')
[ "$soname" = "libaibox.so.$major" ] || { echo "abi: SONAME is '$soname', want libaibox.so.$major"; exit 1; }
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBRVW]/ {print $3}' | grep -v '^aibox_' | grep -v '^AIBOX_')
[ -z "$bad" ] || { echo "abi: symbols without the aibox_ prefix are exported:"; echo "$bad"; exit 1; }
n=$(nm -D --defined-only "$lib" | grep -c ' aibox_')
echo "abi: $lib: SONAME $soname, $n exported symbols, all aibox_"
