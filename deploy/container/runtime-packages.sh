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

# Usrmerge: ldd may say /lib/... where dpkg recorded /usr/lib/... (or the reverse), so each library
# is looked up under both spellings of its path and of its resolved path, all in one dpkg-query call.
mapfile -t libs < <(ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u)
spellings() { local p; for p in "$1" "$(readlink -f "$1")"; do echo "${p#/usr}"; echo "/usr${p#/usr}"; done; }
declare -A owner_of
while IFS= read -r line; do
  owner_of["${line#*: }"]=${line%%:*}      # "libopenmpi3:amd64: /usr/lib/.../libmpi.so.40"
done < <(for lib in "${libs[@]}"; do spellings "$lib"; done | xargs -r dpkg-query -S 2>/dev/null || true)

for lib in "${libs[@]}"; do
  package=""
  while read -r path; do
    [ -n "${owner_of[$path]:-}" ] && { package=${owner_of[$path]}; break; }
  done < <(spellings "$lib")
  if [ -n "$package" ]; then echo "$package"; else echo "runtime-packages: no package owns $lib (skipped)" >&2; fi
done | sort -u
