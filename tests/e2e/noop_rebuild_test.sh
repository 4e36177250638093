#!/usr/bin/env bash
# A second `bazel build //models:my_export` runs no action: the export is a cached
# build artifact, not a script that runs every time. Uses the workspace's own output
# base (what a developer's second build uses), and changes nothing in it.
source "$(dirname "$0")/lib.sh"

cd "$REPO_ROOT"
bazel build //models:my_export >"$E2E_TMP/first.log" 2>&1 || {
  tail -40 "$E2E_TMP/first.log" >&2
  fail "the first build of //models:my_export failed"
}
start=$(now)
bazel build --execution_log_json_file="$E2E_TMP/second.json" //models:my_export \
  >"$E2E_TMP/second.log" 2>&1 || fail "the second build failed"
echo "second build: $(seconds_since "$start") s, $(process_summary "$E2E_TMP/second.log")"
read -r spawns _ <<<"$(spawn_stats "$E2E_TMP/second.json" KerasSavedModel)"
[ "$spawns" = 0 ] || fail "the second build ran $spawns KerasSavedModel action(s)"
[ ! -s "$E2E_TMP/second.json" ] || {
  head -c 2000 "$E2E_TMP/second.json" >&2
  fail "the second build ran actions (execution log above)"
}
echo "ok: the second build ran no action"
