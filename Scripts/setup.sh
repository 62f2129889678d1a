#!/usr/bin/env bash
# Installs the Debian packages fkp needs (only those missing), checks the Swift toolchain and
# builds a release binary. Idempotent: safe to run any number of times.
#   Scripts/setup.sh            install + release build
#   Scripts/setup.sh --no-build install only
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
[ "${1:-}" = "--no-build" ] && build=0

mapfile -t packages < <(grep -v '^#' Scripts/packages.txt | sed '/^\s*$/d')
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "setup: error: no Swift toolchain on PATH (need Swift 6.0 or newer, https://www.swift.org/install/linux/)" >&2
  exit 1
fi
swift_version=$(swift --version 2>&1 | sed -n 's/.*Swift version \([0-9]*\)\..*/\1/p' | head -1)
if [ -z "$swift_version" ] || [ "$swift_version" -lt 6 ]; then
  echo "setup: error: Swift 6.0 or newer is needed, found: $(swift --version 2>&1 | head -1)" >&2
  exit 1
fi

if [ $build -eq 1 ]; then
  echo "setup: building release (swift build -c release)"
  swift build -c release --product fkp
fi
