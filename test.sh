#!/usr/bin/env bash
# Runs every test of rules_keras: `bazel test //...` (installing Bazel and TensorFlow
# on a fresh machine, see ./bazelw), then the end-to-end scripts under tests/e2e/, then
# the lint (tools/lint.sh: ruff and buildifier, one check). Every part runs whatever
# the others gave. Ends with one "N passed, N failed" line. Extra arguments go to
# `bazel test`.
set -uo pipefail
cd "$(dirname "$0")"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

./bazelw test //... "$@" 2>&1 | tee "$log"
bazel_status=${PIPESTATUS[0]}

# Bazel's per-target summary lines: "//pkg:target   (cached) PASSED in 1.2s".
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|INCOMPLETE|FLAKY|NO STATUS|FAILED TO BUILD)' "$log")
if [ "$bazel_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # the build itself failed before any test could report
fi

for script in tests/e2e/*_test.sh; do
  [ -e "$script" ] || continue
  echo "=== $script"
  if "$script"; then
    echo "=== $script: PASSED"
    passed=$((passed + 1))
  else
    echo "=== $script: FAILED"
    failed=$((failed + 1))
  fi
done

echo "=== tools/lint.sh"
if tools/lint.sh; then
  echo "=== tools/lint.sh: PASSED"
  passed=$((passed + 1))
else
  echo "=== tools/lint.sh: FAILED"
  failed=$((failed + 1))
fi

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
