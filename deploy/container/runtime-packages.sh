#!/usr/bin/env bash
# Prints the Debian packages (one per line) that own the shared libraries BINARY loads, so the slim
# runtime image installs exactly what the build stage's `-dev` packages from Scripts/packages.txt
# linked fkp against (libopenmpi3, libopenblas0, libpng16-16, ...) without keeping a second list.
#   deploy/container/runtime-packages.sh .build/release/fkp
# Libraries that no package owns (a toolchain's own runtime when not linked statically) are named
# on stderr and skipped; a library the loader cannot find is an error.
set -euo pipefail
[ $# -eq 1 ] && [ -x "$1" ] || { echo "usage: $0 BINARY" >&2; exit 2; }

if ldd "$1" | grep -q 'not found'; then
  echo "runtime-packages: $1: $(ldd "$1" | grep 'not found' | head -1 | xargs)" >&2
  exit 1
fi

# Usrmerge: ldd may say /lib/... where dpkg recorded /usr/lib/... (or the reverse), so try both.
owner() {
  local path
  for path in "$1" "/usr$1" "${1#/usr}" "$(readlink -f "$1")"; do
    dpkg-query -S "$path" 2>/dev/null | head -1 | cut -d: -f1 && return 0
  done
  return 1
}

ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u | while read -r lib; do
  owner "$lib" || echo "runtime-packages: no package owns $lib (skipped)" >&2
done | sort -u
