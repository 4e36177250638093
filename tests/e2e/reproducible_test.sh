#!/usr/bin/env bash
# Exports are reproducible, cacheable across output bases, and built by a
# hermetic action. Two fresh output bases A and B on this workspace (each makes its own
# TensorFlow venv, at a different path):
#   1. hermetic: aquery shows the KerasSavedModel action has `block-network` and no
#      `requires-network`; the network probe export fails where the network is open and
#      builds under linux-sandbox.
#   2. reproducible: A and B each run every export (no cache) under linux-sandbox with a
#      strict action environment; the trees are compared file by file (sha256) and must
#      be identical (the example's TF Serving warmup records and each export's
#      provenance among them); so must an
#      export whose model JSON holds Python lambdas (their marshalled code names its
#      source file, at a different path in A and B). The non-deterministic control
#      target, built the same way, must be reported different by the same comparison,
#      or the check is worthless.
#   3. disk cache: A builds and tests with --disk_cache; B, after `bazel clean`, runs no
#      KerasSavedModel or KerasProvenance action (all remoteCacheHit in the execution
#      log) and its tests are "(cached) PASSED".
#   4. if the action supports persistent workers: A, after `bazel clean`, exports in a
#      worker; the bytes must equal the sandboxed exports'.
#   Converted formats: A and B also convert exports to each format of `conversions`
#   under linux-sandbox, and in 4 in a worker; every file a converted target writes
#   beside its name (`<name>.tflite` and its manifest...) must be identical. TFLite: the
#   example and a text model that needs TensorFlow ops (whose Flex ops carry NodeDefs,
#   which the converter writes in a per-process order); ONNX: the example and an LSTM
#   (a Loop, which tf2onnx rewrote differently from run to run).
# Prints the figures (actions, hits, misses, wall times) and fails if a property breaks.
source "$(dirname "$0")/lib.sh"

exports=("${CACHE_EXPORTS[@]}")
tests=("${CACHE_TESTS[@]}")
negative=//tests/e2e_targets:nondeterministic_export
lambdas=//tests/e2e_targets:lambda_export
probe=//tests/e2e_targets:network_probe_export
# The converted formats' targets, a row per format: its action's mnemonic
# (export/formats.bzl), then its targets.
conversions=(
  "KerasTfliteModel //models:my_tflite //tests/zoo:review_classifier_tflite"
  "KerasOnnxModel //models:my_onnx //tests/onnx:masked_lstm_onnx"
)
# The exports those convert besides CACHE_EXPORTS.
conversion_exports=(//tests/zoo:review_classifier //tests/onnx:masked_lstm)
converted=()
sandboxed_conversions=()
for row in "${conversions[@]}"; do
  read -r mnemonic labels <<<"$row"
  read -r -a row_labels <<<"$labels"
  converted+=("${row_labels[@]}")
  sandboxed_conversions+=("--strategy=$mnemonic=linux-sandbox")
done

base_a=$(e2e_output_base reproducible_a)
base_b=$(e2e_output_base reproducible_b)
disk_cache="$E2E_TMP/disk_cache"
# The hermetic set-up every build here uses. The cache flags are set explicitly so that a
# user.bazelrc or ~/.bazelrc with a cache cannot turn a cold build into a cached one.
hermetic=(--symlink_prefix=/ --spawn_strategy=linux-sandbox --incompatible_strict_action_env)
no_cache=(--disk_cache= --remote_cache=)
with_disk_cache=(--disk_cache="$disk_cache" --remote_cache=)

# outputs LABEL...: the files and folders a keras_saved_model target writes, relative to
# bazel-bin: <name>/ (the SavedModel tree), <name>.signatures.json, <name>.export.json,
# <name>.provenance.json (so the provenance is byte-identical across output bases too).
outputs() {
  local label path
  for label in "$@"; do
    path=${label#//}
    path=${path/://}
    echo "$path" "$path.signatures.json" "$path.export.json" "$path.provenance.json"
  done
}

# converted_outputs BIN LABEL...: the files each converted target wrote beside its
# name in BIN (`<name>.<extension>`, `<name>.<extension>.json`; not the action's
# flagfile), relative to BIN.
converted_outputs() {
  local bin=$1 label path file found
  shift
  for label in "$@"; do
    path=${label#//}
    path=${path/://}
    found=0
    for file in "$bin/$path".*; do
      case "$file" in *.params) continue ;; esac
      [ -f "$file" ] || continue
      echo "${file#"$bin"/}"
      found=1
    done
    [ "$found" = 1 ] || fail "$label wrote no file beside its name in $bin"
  done
}

# build_conversions NAME BASE STRATEGY: builds each format's targets in BASE with its
# actions under STRATEGY (no cache) and checks that each ran there.
build_conversions() {
  local name=$1 base=$2 strategy=$3 row mnemonic labels misses runners
  local -a row_labels
  for row in "${conversions[@]}"; do
    read -r mnemonic labels <<<"$row"
    read -r -a row_labels <<<"$labels"
    t=$(now)
    run_logged "${name}_$mnemonic" "$base" build "${hermetic[@]}" "${no_cache[@]}" \
      --strategy="$mnemonic=$strategy" --execution_log_json_file="$E2E_TMP/${name}_$mnemonic.json" \
      "${row_labels[@]}"
    read -r _ _ misses runners < <(spawn_stats "$E2E_TMP/${name}_$mnemonic.json" "$mnemonic")
    [ "$misses" = "${#row_labels[@]}" ] && [ "$runners" = "$strategy" ] ||
      fail "expected ${#row_labels[@]} $mnemonic actions under $strategy, got $misses ($runners)"
    echo "  $mnemonic conversions (and the exports they need): $(seconds_since "$t") s"
  done
}

echo "--- output base A: set-up (creates the TensorFlow venv)"
t=$(now)
run_logged a_setup "$base_a" build "${hermetic[@]}" --nobuild "${exports[@]}" "${tests[@]}"
bazel_ob "$base_a" clean >/dev/null 2>&1 || fail "bazel clean failed in A" # a cold start
echo "  venv and analysis: $(seconds_since "$t") s"

echo "--- hermetic action: aquery"
bazel_ob "$base_a" aquery "${hermetic[@]}" 'mnemonic(KerasSavedModel, //models:my_export)' \
  >"$E2E_TMP/aquery.txt" 2>"$E2E_TMP/aquery.err" || {
  cat "$E2E_TMP/aquery.err" >&2
  fail "aquery failed"
}
actions=$(grep -c '^action ' "$E2E_TMP/aquery.txt" || true)
[ "$actions" = 1 ] || fail "aquery found $actions KerasSavedModel actions for //models:my_export, expected 1"
# (Bazel 4.2.3's text output prints the ExecutionInfo line twice.)
execution_info=$(grep -E '^ *ExecutionInfo:' "$E2E_TMP/aquery.txt" | head -1 || true)
echo "  ${execution_info#"${execution_info%%[! ]*}"}"
case "$execution_info" in
  *requires-network*) fail "the KerasSavedModel action asks for the network: $execution_info" ;;
esac
case "$execution_info" in
  *block-network*) echo "ok: block-network, no requires-network" ;;
  *) fail "the KerasSavedModel action does not carry block-network: ${execution_info:-no ExecutionInfo}" ;;
esac
# The action's environment is the rule's fixed one, nothing from the client.
grep -A12 '^ *Environment:' "$E2E_TMP/aquery.txt" | grep -q 'PATH=/bin:/usr/bin' ||
  fail "the KerasSavedModel action's PATH is not the fixed /bin:/usr/bin"

echo "--- hermetic action: the network probe"
if python3 "$E2E_TOOLS" connect pypi.org 443 || python3 "$E2E_TOOLS" connect deb.debian.org 80; then
  # Outside a network namespace the probe must notice the network, or it proves nothing.
  # (Run first: a failed action is not cached, a successful one would be reused.)
  if bazel_ob "$base_a" build "${hermetic[@]}" "${no_cache[@]}" \
    --spawn_strategy=processwrapper-sandbox "$probe" >"$E2E_TMP/probe_open.log" 2>&1; then
    fail "the network probe built with processwrapper-sandbox: it cannot detect the network"
  fi
  expect_in "$E2E_TMP/probe_open.log" "network reachable from the export action"
else
  echo "  (this machine reaches neither pypi.org nor deb.debian.org: only the sandboxed half runs)"
fi
run_logged probe_sandboxed "$base_a" build "${hermetic[@]}" "${no_cache[@]}" \
  --execution_log_json_file="$E2E_TMP/probe_sandboxed.json" "$probe"
export_stats probe_sandboxed
[ "$MISSES" = 1 ] && [ "$RUNNERS" = linux-sandbox ] ||
  fail "the probe did not run once under linux-sandbox"
echo "ok: the probe export builds under linux-sandbox, where it reached no host"

echo "--- output base A: cold build and test, filling the disk cache"
t=$(now)
run_logged a_cold "$base_a" test "${hermetic[@]}" "${with_disk_cache[@]}" \
  --execution_log_json_file="$E2E_TMP/a_cold.json" "${exports[@]}" "${tests[@]}"
cold_time=$(seconds_since "$t")
echo "  wall time: $cold_time s"
expect_exports_ran a_cold "A's cold build"
cold_spawns=$SPAWNS
[ "$RUNNERS" = linux-sandbox ] || fail "exports ran with $RUNNERS, not linux-sandbox"
expect_tests PASSED a_cold
run_logged a_negative "$base_a" build "${hermetic[@]}" "${no_cache[@]}" "$negative"
run_logged a_lambdas "$base_a" build "${hermetic[@]}" "${no_cache[@]}" "$lambdas"
build_conversions a "$base_a" linux-sandbox

echo "--- output base B: set-up and independent build (no cache)"
t=$(now)
run_logged b_setup "$base_b" build "${hermetic[@]}" --nobuild "${exports[@]}" "$negative" "$lambdas" \
  "${converted[@]}"
bazel_ob "$base_b" clean >/dev/null 2>&1 || fail "bazel clean failed in B"
echo "  venv and analysis: $(seconds_since "$t") s"
t=$(now)
run_logged b_build "$base_b" build "${hermetic[@]}" "${no_cache[@]}" "${sandboxed_conversions[@]}" \
  --execution_log_json_file="$E2E_TMP/b_build.json" \
  "${exports[@]}" "$negative" "$lambdas" "${converted[@]}"
echo "  wall time: $(seconds_since "$t") s"
export_stats b_build
[ "$MISSES" = $((${#exports[@]} + 2 + ${#conversion_exports[@]})) ] && [ "$HITS" = 0 ] ||
  fail "expected every export to run in B"
for row in "${conversions[@]}"; do
  read -r mnemonic labels <<<"$row"
  read -r -a row_labels <<<"$labels"
  read -r _ _ misses _ < <(spawn_stats "$E2E_TMP/b_build.json" "$mnemonic")
  [ "$misses" = "${#row_labels[@]}" ] || fail "expected every $mnemonic conversion to run in B"
done

bin_a=$(bazel_ob "$base_a" info "${hermetic[@]}" bazel-bin 2>/dev/null)
bin_b=$(bazel_ob "$base_b" info "${hermetic[@]}" bazel-bin 2>/dev/null)
[ "$bin_a" != "$bin_b" ] || fail "A and B share $bin_a"

echo "--- reproducible: A and B exports compared"
# shellcheck disable=SC2046 # outputs prints space-free paths
compare_outputs "$bin_a" "$bin_b" $(outputs "${exports[@]}" "$lambdas") ||
  fail "the exports of A and B differ: they are not reproducible"
echo "ok: byte-identical in two output bases"
# Covered by the comparison above; checked by name, so that the example keeps writing
# them (its test replays them through TF Serving's loader in A's build above).
warmup=models/my_export/1/assets.extra/tf_serving_warmup_requests
[ -s "$bin_a/$warmup" ] && [ -s "$bin_b/$warmup" ] || fail "$warmup is missing or empty in A or B"
compare_outputs "$bin_a" "$bin_b" "$warmup" || fail "the TF Serving warmup records of A and B differ"
echo "ok: the TF Serving warmup records ($(stat -c %s "$bin_a/$warmup") bytes) are byte-identical"

echo "--- reproducible: A and B converted files compared"
converted_files=$(converted_outputs "$bin_a" "${converted[@]}") || exit 1
# shellcheck disable=SC2086 # converted_outputs prints space-free paths
compare_outputs "$bin_a" "$bin_b" $converted_files ||
  fail "the converted files of A and B differ: a conversion is not reproducible"
# Kept for the worker's comparison: the disk-cache step below cleans B.
# shellcheck disable=SC2086
digest_outputs "$bin_b" $converted_files >"$E2E_TMP/converted_sandboxed_sums"
echo "ok: byte-identical converted files in two output bases: ${converted_files//$'\n'/ }"

echo "--- negative control: $negative in A and B"
# shellcheck disable=SC2046
if compare_outputs "$bin_a" "$bin_b" $(outputs "$negative"); then
  fail "the comparison found the non-deterministic export identical: it cannot detect a difference"
fi
echo "ok: the comparison reports the non-deterministic export as different"

echo "--- disk cache: B after bazel clean, from the cache A filled"
bazel_ob "$base_b" clean --symlink_prefix=/ >/dev/null 2>&1 || fail "bazel clean failed in B"
[ ! -e "$bin_b/models/my_export" ] || fail "bazel clean left $bin_b/models/my_export"
t=$(now)
run_logged b_cached "$base_b" test "${hermetic[@]}" "${with_disk_cache[@]}" \
  --execution_log_json_file="$E2E_TMP/b_cached.json" "${exports[@]}" "${tests[@]}"
cached_time=$(seconds_since "$t")
echo "  wall time: $cached_time s"
expect_exports_cached b_cached a_cold "the disk cache"
expect_tests "(cached) PASSED" b_cached a_cold
cached_hits=$HITS cached_misses=$MISSES
# The provenance is served by the cache like the export it describes.
read -r prov_spawns prov_hits prov_misses _ < <(spawn_stats "$E2E_TMP/b_cached.json" KerasProvenance)
[ "$prov_misses" = 0 ] && [ "$prov_hits" = "$prov_spawns" ] && [ "$prov_spawns" -gt 0 ] ||
  fail "B ran $prov_misses of $prov_spawns KerasProvenance actions instead of taking them from the disk cache"
echo "  provenance: $prov_hits of $prov_spawns from the disk cache"
# shellcheck disable=SC2046
compare_outputs "$bin_a" "$bin_b" $(outputs "${exports[@]}") ||
  fail "the cached exports differ from A's"

echo "--- persistent worker: the same bytes as the sandboxed one-shot exports"
case "$execution_info" in
  *supports-workers*)
    # A after clean runs the exports in the worker (no cache); B holds A's sandboxed bytes.
    bazel_ob "$base_a" clean >/dev/null 2>&1 || fail "bazel clean failed in A"
    t=$(now)
    run_logged a_worker "$base_a" build "${hermetic[@]}" "${no_cache[@]}" \
      --strategy=KerasSavedModel=worker --execution_log_json_file="$E2E_TMP/a_worker.json" \
      "${exports[@]}"
    echo "  wall time: $(seconds_since "$t") s"
    export_stats a_worker
    [ "$MISSES" = "${#exports[@]}" ] && [ "$RUNNERS" = worker ] ||
      fail "expected the ${#exports[@]} exports to run in a worker"
    # shellcheck disable=SC2046
    compare_outputs "$bin_a" "$bin_b" $(outputs "${exports[@]}") ||
      fail "exports made by the persistent worker differ from the sandboxed ones"
    echo "ok: the worker writes the same bytes"
    build_conversions a_worker "$base_a" worker
    # shellcheck disable=SC2086
    digest_outputs "$bin_a" $converted_files >"$E2E_TMP/converted_worker_sums"
    python3 "$E2E_TOOLS" compare "$E2E_TMP/converted_worker_sums" "$E2E_TMP/converted_sandboxed_sums" ||
      fail "files converted by the persistent workers differ from the sandboxed ones"
    echo "ok: the converters' workers write the same bytes"
    ;;
  *) echo "  (the KerasSavedModel action does not support workers: skipped)" ;;
esac

echo "--- figures"
echo "  KerasSavedModel actions: cold (A) $cold_spawns ran; from the disk cache (B after clean)" \
  "$cached_hits hits, $cached_misses misses"
echo "  wall time, build+test: cold (A, venv ready) $cold_time s, from the disk cache (B after clean) $cached_time s"
