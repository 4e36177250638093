#!/usr/bin/env bash
# rules_keras works as an external repository: tests/e2e/consumer loads it through
# local_repository, exports a model with @rules_keras and runs its keras_saved_model_test.
source "$(dirname "$0")/lib.sh"

consumer="$REPO_ROOT/tests/e2e/consumer"
log="$E2E_TMP/consumer.log"
bazel_in "$consumer" test --symlink_prefix=/ //classifier:all >"$log" 2>&1 || {
  tail -60 "$log" >&2
  fail "bazel test in the consumer workspace failed"
}
expect_in "$log" "//classifier:export_test"
expect_in "$log" "1 test passes"
