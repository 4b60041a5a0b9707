#!/bin/sh
# The shared library exports cloudlet_* symbols and nothing else, and its
# SONAME carries the ABI major version.
set -eu
lib=$1
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRWVi]$/ && $3 !~ /^cloudlet_/ {print $3}' || true)
if [ -n "$bad" ]; then
	echo "FAIL: $lib exports non-cloudlet_ symbols:"; echo "$bad"; exit 1
fi
n=$(nm -D --defined-only "$lib" | awk '$3 ~ /^cloudlet_/' | wc -l)
[ "$n" -gt 10 ] || { echo "FAIL: only $n cloudlet_ symbols exported"; exit 1; }
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libcloudlet.so.0" ] || { echo "FAIL: SONAME is '$soname'"; exit 1; }
echo "ok: $n cloudlet_ symbols, nothing else; SONAME $soname"
