#!/usr/bin/env bash
# rules_keras works as an external repository: tests/e2e/consumer loads it through
# local_repository (and rules_python through the offline stand-in), builds with
# rules_keras's .bazelrc flags, exports its own model and one whose builder comes from
# rules_keras through py_library `imports`, and runs both keras_saved_model_tests.
source "$(dirname "$0")/lib.sh"

consumer="$REPO_ROOT/tests/e2e/consumer"
log="$E2E_TMP/consumer.log"
bazel_in "$consumer" test --symlink_prefix=/ //classifier:all >"$log" 2>&1 || {
  tail -60 "$log" >&2
  fail "bazel test in the consumer workspace failed"
}
expect_in "$log" "//classifier:export_test"
expect_in "$log" "//classifier:imported_export_test"
expect_in "$log" "2 tests pass"
