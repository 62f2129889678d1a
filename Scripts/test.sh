#!/usr/bin/env bash
# Sets up (Debian packages) and runs the whole test suite on a release build: the tests launch the
# built `fkp` and `swiftmpi-selftest` under real `mpirun`, and numeric tests need optimised code.
# Extra arguments go to `swift test` (e.g. --filter TrainingTests).
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh --no-build
# mpirun refuses to start as root (CI runs as root) unless told it may.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# The Python side of the tests (PyTorch loads fkp's checkpoints, TensorBoard's reader reads its
# event files): a virtual environment in .build/, made once per build folder (about 1.5 min and
# 5 GB: PyPI's torch wheel brings its CUDA libraries). System packages (PyYAML, matplotlib) stay
# visible to it; the tests find it first on PATH. The tests that use it never skip: without it they fail.
venv=.build/python
# PyPI names that are also the modules' import names: one list installs and checks them.
python_packages=(torch safetensors numpy tensorboard onnx onnxruntime)
if ! "$venv/bin/python" -c "import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))" "${python_packages[@]}" 2>/dev/null; then
    echo "test: making $venv (${python_packages[*]})"
    if ! { python3 -m venv --system-site-packages "$venv" && "$venv/bin/pip" install -q "${python_packages[@]}"; }; then
        echo "test: warning: the Python packages could not be installed; the tests that use them will fail" >&2
    fi
fi
export PATH="$PWD/$venv/bin:$PATH"
swift build -c release --build-tests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# The suite is XCTest only.
swift test -c release --skip-build --disable-swift-testing "$@" 2>&1 | tee "$log" || status=$?
# Fuzz smoke (a full run only): every parser of untrusted files gets a few seconds of libFuzzer
# with ASan and LeakSanitizer (Scripts/fuzz), so a crash regression cannot land.
if [[ $# -eq 0 ]]; then Scripts/fuzz all --seconds 3 || status=1; fi
# One closing line in the plain form: "tests: N passed, N failed, N skipped" (from XCTest's
# last "Executed N tests, with [K tests skipped and] F failures" line).
summary=$(grep -E "Executed [0-9]+ tests?, with" "$log" | tail -n 1 || true)
executed=$(sed -nE 's/.*Executed ([0-9]+) tests?.*/\1/p' <<<"$summary")
skipped=$(sed -nE 's/.* ([0-9]+) tests? skipped.*/\1/p' <<<"$summary")
failed=$(sed -nE 's/.* ([0-9]+) failures?.*/\1/p' <<<"$summary")
executed=${executed:-0} skipped=${skipped:-0} failed=${failed:-0}
echo "tests: $(( executed - skipped - failed )) passed, $failed failed, $skipped skipped"
exit $status
