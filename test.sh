#!/usr/bin/env bash
# Runs every test of rules_keras: `bazel test //...` (installing Bazel and TensorFlow
# on a fresh machine, see ./bazelw), then the end-to-end scripts under tests/e2e/, then
# the lint (tools/lint.sh: ruff and buildifier, one check). Every part runs whatever
# the others gave. Ends with one "N passed, N failed, N skipped" line (skipped: tests
# that could not run for want of a privilege, each named above it; a skip is not a
# pass). Extra arguments go to `bazel test`.
set -uo pipefail
cd "$(dirname "$0")"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

./bazelw test //... "$@" 2>&1 | tee "$log"
bazel_status=${PIPESTATUS[0]}

# Bazel's per-target summary lines: "//pkg:target   (cached) PASSED in 1.2s".
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
# What failed is named again in the last lines, which a truncated CI log still shows.
failures=$(grep -oE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|INCOMPLETE|FLAKY|NO STATUS|FAILED TO BUILD)' "$log" | tr -s ' ' | tr '\n' ';')
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|INCOMPLETE|FLAKY|NO STATUS|FAILED TO BUILD)' "$log")
if [ "$bazel_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # the build itself failed before any test could report
fi

# A test that needs what this machine lacks (test_faults: user namespaces or root)
# skips with a "NOT RUN HERE:" line in its log (under CI it fails instead). Bazel
# reports the target PASSED; it is counted as skipped, not passed.
skipped=0
for target in $(grep -oE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" | cut -d' ' -f1); do
  logs_dir="bazel-testlogs/$(echo "${target#//}" | tr ':' '/')"
  reasons=$(find "$logs_dir" -name test.log -exec grep -h '^NOT RUN HERE: ' {} + 2>/dev/null)
  if [ -n "$reasons" ]; then
    echo "$target: SKIPPED (not run here)"
    echo "$reasons"
    skipped=$((skipped + 1))
    passed=$((passed - 1))
  fi
done

for script in tests/e2e/*_test.sh; do
  [ -e "$script" ] || continue
  echo "=== $script"
  start=$SECONDS
  if "$script"; then
    echo "=== $script: PASSED in $((SECONDS - start)) s"
    passed=$((passed + 1))
  else
    echo "=== $script: FAILED in $((SECONDS - start)) s"
    failures="$failures $script;"
    failed=$((failed + 1))
  fi
done

echo "=== tools/lint.sh"
if tools/lint.sh; then
  echo "=== tools/lint.sh: PASSED"
  passed=$((passed + 1))
else
  echo "=== tools/lint.sh: FAILED"
  failures="$failures tools/lint.sh;"
  failed=$((failed + 1))
fi

[ -z "$failures" ] || echo "failed: $failures"
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ]
