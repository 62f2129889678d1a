#!/usr/bin/env bash
# Sets up (Debian packages) and runs the whole test suite on a release build: the tests launch the
# built `fkp` and `swiftmpi-selftest` under real `mpirun`, and numeric tests need optimised code.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh --no-build
# mpirun refuses to start as root (CI runs as root) unless told it may.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
swift build -c release --build-tests
swift test -c release --skip-build "$@"
