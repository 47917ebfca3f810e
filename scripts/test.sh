#!/usr/bin/env bash
# The test suite, from a fresh clone: set-up (libtorch; no build of the release binary), then every
# test of the workspace. Tests that read ../shared/data skip with a message when it is absent,
# except under CI=true, where they fail (a missing data set must not pass unnoticed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
./scripts/setup.sh --no-build
exec cargo test --workspace "$@"
