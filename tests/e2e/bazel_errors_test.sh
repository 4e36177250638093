#!/usr/bin/env bash
# A keras_saved_model (or keras_tflite_model) target whose action fails tells a Bazel
# user which attribute to change and the value to set, and names the target, not the
# program's command-line flags. Builds each failing target of tests/bazel_errors (all
# manual) in this workspace's own output base.
source "$(dirname "$0")/lib.sh"

# expect_export_error TARGET ATTRIBUTE FLAG TEXT...: building TARGET fails; the exporter's
# paragraph names the target and "attribute ATTRIBUTE", holds every TEXT, and not FLAG.
# PROGRAM (default exporter) is the program whose error it is.
expect_export_error() {
  local target=$1 attribute=$2 flag=$3 text
  shift 3
  local program=${PROGRAM:-exporter}
  local log="$E2E_TMP/${target##*:}.log" paragraph="$E2E_TMP/${target##*:}.error"
  echo "--- $target"
  if (cd "$REPO_ROOT" && ./bazelw build "$target") >"$log" 2>&1; then
    fail "$target built, but its export must fail"
  fi
  # From the program's "PROGRAM: error:" line to the blank line before any traceback.
  sed -n "/^$program: error: /,/^\$/p" "$log" >"$paragraph"
  [ -s "$paragraph" ] || {
    tail -40 "$log" >&2
    fail "$target: no $program error in the build's output"
  }
  expect_in "$paragraph" "$target: attribute $attribute: "
  for text in "$@"; do
    expect_in "$paragraph" "$text"
  done
  if grep -qF -- "$flag" "$paragraph"; then
    cat "$paragraph" >&2
    fail "$target: the error names the exporter's flag '$flag'"
  fi
  echo "ok: no '$flag'"
}

expect_export_error //tests/bazel_errors:lambda_src allow_unsafe_deserialization --allow_unsafe_deserialization \
  "allow_unsafe_deserialization = True"
expect_export_error //tests/bazel_errors:missing_custom_object custom_objects --custom_objects \
  'custom_objects = {"Scale": "package.module:Scale"}'
expect_export_error //tests/bazel_errors:builder_raises builder --builder \
  "ValueError: no training data at /data/train.csv"
expect_export_error //tests/bazel_errors:bad_label_specs label_specs --label_specs \
  "dimension 'ten'" 'label_specs = {"probs": "None,10:float32"}'
expect_export_error //tests/bazel_errors:label_specs_of_no_output label_specs --label_specs \
  "scores is not an output of the model"
expect_export_error //tests/bazel_errors:unsupported_mode modes --modes \
  "drop 'train' from modes"
PROGRAM=tflite_converter expect_export_error //tests/bazel_errors:text_tflite allow_select_tf_ops \
  --allow_select_tf_ops "allow_select_tf_ops = True" "StringLower" "StringSplitV2"
