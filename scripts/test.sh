#!/usr/bin/env bash
# The test suite, from a fresh clone: set-up (libtorch; no build of the release binary; Chromium for
# the report test where it can be installed), then every test of the workspace. Tests that read ../shared/data skip with a message when it is absent,
# except under CI=true, where they fail (a missing data set must not pass unnoticed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
./scripts/setup.sh --no-build
# The report test renders a run's report.html in headless Chromium: take it from the distribution's
# packages where this user may install them; otherwise that one check is skipped, said here because
# cargo hides what a passing test prints.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo -n"
  if command -v apt-get >/dev/null 2>&1; then
    $sudo_ apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
      $sudo_ apt-get update -q >/dev/null 2>&1 &&
        $sudo_ apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } || true
  fi
  command -v chromium >/dev/null 2>&1 ||
    echo "test.sh: no Chromium could be installed; report.html is not rendered in a browser by the tests" >&2
fi
exec cargo test --workspace "$@"
