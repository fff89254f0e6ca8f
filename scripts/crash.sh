#!/usr/bin/env bash
# Runs the slow crash tests: kill -9 of add, fetch and gc at several seeded
# points on 256 MiB of data (the default test run tries one point on less),
# and of a mirror filling 64 MiB from its upstream at seven points (the
# default run tries four on 8 MiB).
# Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ALLMENDE_SLOW_TESTS=1 go test -count=1 -timeout 30m -run 'TestCrash' -v ./test/e2e "$@"
