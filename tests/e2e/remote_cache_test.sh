#!/usr/bin/env bash
# Exports are served by a real REAPI remote cache. Starts BuildGrid (from PyPI,
# see buildgrid.sh) on 127.0.0.1 with a free port; a build and test with
# --remote_cache=grpc://... in a fresh output base fills it; after `bazel clean` the same
# build runs no KerasSavedModel action (remoteCacheHit for all in the execution log) and
# the tests are "(cached) PASSED". The server is stopped at exit.
source "$(dirname "$0")/lib.sh"

exports=("${CACHE_EXPORTS[@]}")
tests=("${CACHE_TESTS[@]}")

base=$(e2e_output_base remote_cache)
server_dir="$E2E_TMP/buildgrid"
buildgrid="$REPO_ROOT/tests/e2e/buildgrid.sh"
hermetic=(--symlink_prefix=/ --spawn_strategy=linux-sandbox --incompatible_strict_action_env)

echo "--- BuildGrid"
t=$(now)
"$buildgrid" install >/dev/null
at_exit "'$buildgrid' stop '$server_dir'"
url=$("$buildgrid" start "$server_dir")
echo "  $url (venv ready and server up in $(seconds_since "$t") s)"
remote=(--remote_cache="$url" --disk_cache= --remote_upload_local_results)

echo "--- fresh output base: set-up (creates the TensorFlow venv)"
t=$(now)
run_logged setup "$base" build "${hermetic[@]}" --nobuild "${exports[@]}" "${tests[@]}"
bazel_ob "$base" clean >/dev/null 2>&1 || fail "bazel clean failed" # a cold start
echo "  venv and analysis: $(seconds_since "$t") s"

echo "--- cold build and test, filling the remote cache"
t=$(now)
run_logged cold "$base" test "${hermetic[@]}" "${remote[@]}" \
  --execution_log_json_file="$E2E_TMP/cold.json" "${exports[@]}" "${tests[@]}"
cold_time=$(seconds_since "$t")
echo "  wall time: $cold_time s"
expect_exports_ran cold "the cold build"
cold_misses=$MISSES
expect_tests PASSED cold
cas_files=$(find "$server_dir/cas" -type f | wc -l)
echo "  the server's CAS holds $cas_files blobs"
[ "$cas_files" -gt 0 ] || fail "nothing was uploaded to BuildGrid"

echo "--- after bazel clean: everything from the remote cache"
bazel_ob "$base" clean --symlink_prefix=/ >/dev/null 2>&1 || fail "bazel clean failed"
t=$(now)
run_logged cached "$base" test "${hermetic[@]}" "${remote[@]}" \
  --execution_log_json_file="$E2E_TMP/cached.json" "${exports[@]}" "${tests[@]}"
cached_time=$(seconds_since "$t")
echo "  wall time: $cached_time s"
expect_exports_cached cached cold BuildGrid
expect_in "$E2E_TMP/cached.log" "remote cache hit"
expect_tests "(cached) PASSED" cached cold

echo "--- figures"
echo "  KerasSavedModel actions: cold $cold_misses ran; after clean $HITS hits, $MISSES misses"
echo "  wall time, build+test: cold (venv ready) $cold_time s, from BuildGrid after clean $cached_time s"
