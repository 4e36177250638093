#!/usr/bin/env bash
# A monorepo that brings its own TensorFlow (tests/e2e/byo_tensorflow): its own Python
# toolchain and --@rules_keras//export:tensorflow pointing at a library of exactly
# tensorflow-cpu, keras and absl-py (and what they require), installed from the lock.
# That core alone exports in every mode and passes keras_saved_model_test; a target
# that asks for warmup records fails with the paragraph naming the attribute and
# tensorflow-serving-api; and with the flag forgotten (the exporter's Python then has
# no TensorFlow at all) the persistent worker's error names the missing module rather
# than "Broken pipe".
#
# The library stands in for rules_python's pip_parse, which downloads from GitHub
# (unreachable here): a repository rule that installs the core's entries of
# rules_keras's lock, hash-checked and --no-deps as pip_parse installs each, with uv
# and its download cache from rules_keras's cache folder, so no wheel is downloaded
# again (byo_tensorflow/user_pip.bzl).
source "$(dirname "$0")/lib.sh"

workspace="$REPO_ROOT/tests/e2e/byo_tensorflow"
started=$(now)

# 1. Every mode, and its test, on the core alone.
log="$E2E_TMP/byo.log"
step=$(now)
bazel_in "$workspace" test --symlink_prefix=/ //ranker:all >"$log" 2>&1 || {
  tail -60 "$log" >&2
  fail "bazel test of the export on tensorflow-cpu, keras and absl-py alone failed"
}
expect_in "$log" "//ranker:ranker_test"
expect_in "$log" "1 test passes"
library=$(bazel_in "$workspace" info output_base 2>/dev/null)/external/pip
for package in tensorflow keras absl; do
  [ -d "$library/site-packages/$package" ] || fail "the library has no $package"
done
[ ! -e "$library/site-packages/tensorflow_serving" ] ||
  fail "the library holds tensorflow_serving: it must be the core alone"
echo "ok: the library holds $(grep -c '==' "$library/requirements_lock.txt") packages of the lock, no tensorflow_serving"
signatures="$(bazel_in "$workspace" info bazel-bin 2>/dev/null)/ranker/ranker.signatures.json"
for key in serving_default eval train; do
  expect_in "$signatures" "\"$key\""
done
echo "  every mode and its test: $(seconds_since "$step") s"

# 2. Warmup records ask for tensorflow-serving-api, which the library does not have.
log="$E2E_TMP/warmup.log"
step=$(now)
if bazel_in "$workspace" build --symlink_prefix=/ //ranker:ranker_with_warmup >"$log" 2>&1; then
  fail "//ranker:ranker_with_warmup built without tensorflow-serving-api"
fi
paragraph="$E2E_TMP/warmup.error"
sed -n '/^exporter: error: /,/^$/p' "$log" >"$paragraph"
expect_in "$paragraph" "//ranker:ranker_with_warmup: attribute warmup_requests: "
expect_in "$paragraph" "needs the PyPI package tensorflow-serving-api"
expect_in "$paragraph" 'requirement("tensorflow-serving-api")'
expect_in "$paragraph" "or set warmup_requests = 0."
if grep -q "Broken pipe" "$log"; then fail "a broken pipe in the warmup target's build"; fi
echo "  warmup records without their package: $(seconds_since "$step") s"

# 3. The flag forgotten: the exporter's Python (the workspace's toolchain) has no
# absl, keras or TensorFlow, and its worker cannot start. An output base of its own,
# kept like the workspace's, so that neither run undoes the other's analysis.
log="$E2E_TMP/no_library.log"
step=$(now)
no_library_base="${XDG_CACHE_HOME:-$HOME/.cache}/rules_keras/e2e/$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)/byo_no_library"
at_exit "(cd '$workspace' && bazel --output_base='$no_library_base' shutdown >/dev/null 2>&1)"
if (cd "$workspace" && bazel --output_base="$no_library_base" --max_idle_secs=300 build \
  --symlink_prefix=/ --@rules_keras//export:tensorflow=@rules_keras//export:tensorflow_from_toolchain \
  --strategy=KerasSavedModel=worker //ranker:ranker) >"$log" 2>&1; then
  fail "//ranker:ranker built with no TensorFlow in its Python"
fi
expect_in "$log" "exporter: error: the persistent worker could not start, so it ran no request: ModuleNotFoundError: No module named 'absl'"
expect_in "$log" "rules_keras runs on tensorflow-cpu, keras, absl-py"
if grep -q "Broken pipe" "$log"; then
  tail -40 "$log" >&2
  fail "Bazel reported a broken pipe instead of the worker's error"
fi
echo "ok: no 'Broken pipe'"
echo "  a worker that cannot start: $(seconds_since "$step") s"
echo "byo_tensorflow_test: $(seconds_since "$started") s"
