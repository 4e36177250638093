#!/usr/bin/env bash
# Exports run on a real remote-execution server. Starts BuildGrid with its Execution
# service (PostgreSQL scheduler) and one worker, tests/e2e/rex/bot.py, which runs every
# action in bubblewrap with only its input root and the base system visible (see
# buildgrid.sh start-execution). Then, with --remote_executor=grpc://127.0.0.1:PORT:
#  1. the worker's own checks: a probe of a host path is "hidden" remotely and "visible"
#     locally (so the probe can see one), python3 from /usr/bin and an sh_test run there;
#  2. the exports and their tests, cold: every KerasSavedModel action and every test
#     spawn ran remotely (execution log), the toolchain uploaded on the way;
#  3. the exports again after `bazel clean` with --noremote_accept_cached: a warm
#     remote run;
#  4. the same locally (linux-sandbox, no cache): the trees are byte-identical;
#  5. a second output base: every export and test from the server's action cache.
# Everything started is stopped at exit, by PID.
source "$(dirname "$0")/lib.sh"

exports=("${CACHE_EXPORTS[@]}")
# With the C++ consumer, compiled and run remotely against the toolchain's TensorFlow C API.
tests=("${CACHE_TESTS[@]}" //models:predict_cc_test)
rex_checks=(//tests/e2e/rex:isolation_probe //tests/e2e/rex:reads_its_inputs_test)

base=$(e2e_output_base remote_execution)
fresh_base=$(e2e_output_base remote_execution_fresh)
server_dir="$E2E_TMP/buildgrid"
buildgrid="$REPO_ROOT/tests/e2e/buildgrid.sh"
# The toolchain whose interpreter and packages are declared inputs: the only one a
# remote worker can run (rules_keras_dependencies' toolchain_layout).
common=(--symlink_prefix=/ --incompatible_strict_action_env --disk_cache=
  --repo_env=RULES_KERAS_TOOLCHAIN_LAYOUT=hermetic)
local_run=("${common[@]}" --spawn_strategy=linux-sandbox --remote_cache= --remote_executor=)

# tree_paths OUTPUT_BASE: the exports' output trees, relative to that output base.
tree_paths() {
  local bin target package name
  bin=$(bazel_ob "$1" info "${common[@]}" bazel-bin 2>/dev/null)
  for target in "${exports[@]}"; do
    package=${target#//}
    name=${package#*:}
    package=${package%%:*}
    echo "${bin#"$1"/}/$package/$name"
    echo "${bin#"$1"/}/$package/$name.signatures.json"
    echo "${bin#"$1"/}/$package/$name.export.json"
  done
}

# expect_remote NAME WHAT [tests]: every KerasSavedModel spawn (and with "tests", every
# test spawn) of the build logged as NAME ran on the worker (runner "remote", no cache
# hit).
expect_remote() {
  local name=$1 what=$2
  export_stats "$name"
  [ "$MISSES" = "${#exports[@]}" ] && [ "$HITS" = 0 ] && [ "$RUNNERS" = remote ] ||
    fail "expected all ${#exports[@]} KerasSavedModel actions to run remotely in $what"
  [ "${3-}" = tests ] || return 0
  read -r SPAWNS HITS MISSES RUNNERS < <(spawn_stats "$E2E_TMP/$name.json" TestRunner)
  echo "  test spawns: $SPAWNS, cache hits: $HITS, runner: $RUNNERS"
  [ "$SPAWNS" -ge "${#tests[@]}" ] && [ "$HITS" = 0 ] && [ "$RUNNERS" = remote ] ||
    fail "expected every test spawn to run remotely in $what"
}

echo "--- BuildGrid with execution: PostgreSQL, server, worker"
t=$(now)
"$buildgrid" install >/dev/null
at_exit "'$buildgrid' stop '$server_dir'"
url=$("$buildgrid" start-execution "$server_dir")
stack_time=$(seconds_since "$t")
echo "  $url (up in $stack_time s)"
# No local runfiles trees: the worker stages runfiles from the action's inputs, and each
# Python binary's tree would hold ~11,000 links to the toolchain for nothing.
remote=(--remote_executor="$url" --spawn_strategy=remote --nobuild_runfile_links)

echo "--- set-up of two output bases (their TensorFlow venvs)"
t=$(now)
for b in "$base" "$fresh_base"; do
  run_logged "setup_$(basename "$b")" "$b" build "${common[@]}" --nobuild \
    "${exports[@]}" "${tests[@]}" "${rex_checks[@]}"
  bazel_ob "$b" clean >/dev/null 2>&1 || fail "bazel clean failed" # a cold start
done
echo "  venvs and analysis: $(seconds_since "$t") s"

echo "--- the worker: isolated, python3 from the base system, a test"
probe=(--action_env=REX_PROBE_PATH="$REPO_ROOT/WORKSPACE")
probe_file=$(bazel_ob "$base" info "${common[@]}" bazel-bin 2>/dev/null)/tests/e2e/rex/isolation_probe.txt
run_logged probe_remote "$base" test "${common[@]}" "${remote[@]}" "${probe[@]}" \
  --execution_log_json_file="$E2E_TMP/probe_remote.json" "${rex_checks[@]}"
[ "$(head -1 "$probe_file")" = hidden ] ||
  fail "a remote action could read the host's $REPO_ROOT/WORKSPACE: the worker is not isolated"
echo "ok: a remote action does not see $REPO_ROOT/WORKSPACE; its / holds:" \
  "$(tail -n +2 "$probe_file" | tr '\n' ' ')"
read -r _ _ _ probe_runners < <(spawn_stats "$E2E_TMP/probe_remote.json" Genrule)
[ "$probe_runners" = remote ] || fail "the probe genrules ran on '$probe_runners', not remotely"
grep -qE '^//tests/e2e/rex:reads_its_inputs_test +PASSED' "$E2E_TMP/probe_remote.log" ||
  fail "the worker's sh_test did not pass remotely"
echo "ok: genrules (one with /usr/bin/python3) and an sh_test ran remotely"
# The control: the same probe in the local sandbox sees the file, so "hidden" means
# something.
bazel_ob "$base" clean >/dev/null 2>&1 || fail "bazel clean failed"
run_logged probe_local "$base" build "${local_run[@]}" "${probe[@]}" //tests/e2e/rex:isolation_probe
[ "$(head -1 "$probe_file")" = visible ] ||
  fail "the probe does not see $REPO_ROOT/WORKSPACE even locally: it cannot prove isolation"
echo "ok: in the local sandbox the same probe sees it"
bazel_ob "$base" clean >/dev/null 2>&1 || fail "bazel clean failed"

echo "--- cold remote build and test (uploads the toolchain)"
t=$(now)
run_logged cold "$base" test "${common[@]}" "${remote[@]}" \
  --execution_log_json_file="$E2E_TMP/cold.json" "${exports[@]}" "${tests[@]}"
cold_time=$(seconds_since "$t")
echo "  wall time: $cold_time s"
expect_remote cold "the cold remote build" tests
expect_tests PASSED cold
grep -qE '^//models:predict_cc_test +PASSED' "$E2E_TMP/cold.log" ||
  fail "//models:predict_cc_test (the C++ consumer) did not pass remotely"
mapfile -t trees < <(tree_paths "$base")
digest_outputs "$base" "${trees[@]}" >"$E2E_TMP/remote.sums"
echo "  the server's CAS holds $(find "$server_dir/cas" -type f | wc -l) blobs" \
  "($(du -sm "$server_dir/cas" | cut -f1) MB)"

# The exports only, from here to the second output base: their tests ran remotely above.
echo "--- warm remote exports after bazel clean (toolchain in the CAS, no cache)"
bazel_ob "$base" clean >/dev/null 2>&1 || fail "bazel clean failed"
t=$(now)
run_logged warm "$base" build "${common[@]}" "${remote[@]}" --noremote_accept_cached \
  --execution_log_json_file="$E2E_TMP/warm.json" "${exports[@]}"
warm_time=$(seconds_since "$t")
echo "  wall time: $warm_time s"
expect_remote warm "the warm remote build"

echo "--- the same exports locally (linux-sandbox, no cache): byte-identical trees"
bazel_ob "$base" clean >/dev/null 2>&1 || fail "bazel clean failed"
t=$(now)
run_logged local "$base" build "${local_run[@]}" \
  --execution_log_json_file="$E2E_TMP/local.json" "${exports[@]}"
local_time=$(seconds_since "$t")
echo "  wall time: $local_time s"
export_stats local
[ "$RUNNERS" = linux-sandbox ] && [ "$MISSES" = "${#exports[@]}" ] ||
  fail "expected the local build to run every export in linux-sandbox"
digest_outputs "$base" "${trees[@]}" >"$E2E_TMP/local.sums"
python3 "$E2E_TOOLS" compare "$E2E_TMP/remote.sums" "$E2E_TMP/local.sums" ||
  fail "the remote exports differ from the local ones (files listed above)"

echo "--- a second output base: everything from the server's action cache"
t=$(now)
run_logged cached "$fresh_base" test "${common[@]}" "${remote[@]}" \
  --execution_log_json_file="$E2E_TMP/cached.json" "${exports[@]}" "${tests[@]}"
cached_time=$(seconds_since "$t")
echo "  wall time: $cached_time s"
expect_exports_cached cached cold "BuildGrid's action cache"
expect_tests "(cached) PASSED" cached cold
mapfile -t fresh_trees < <(tree_paths "$fresh_base")
digest_outputs "$fresh_base" "${fresh_trees[@]}" >"$E2E_TMP/cached.sums"
python3 "$E2E_TOOLS" compare "$E2E_TMP/remote.sums" "$E2E_TMP/cached.sums" ||
  fail "the trees from the action cache differ from the remote build's"

echo "--- figures"
echo "  stack start (database, schema, server, worker): $stack_time s"
echo "  3 exports + 3 tests, wall time: cold remote (toolchain upload) $cold_time s," \
  "second output base from the action cache $cached_time s"
echo "  3 exports, wall time: warm remote $warm_time s, local $local_time s"
echo "  whole script: $SECONDS s"
echo "  the worker, per action (input root staged from its cache, run, outputs uploaded):"
sed -n 's/^bot [0-9:]* /    /p' "$server_dir/bot.log" | grep ': exit '
