# Shared helpers of the end-to-end scripts (sourced, not run).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/rules_keras_e2e.XXXXXX")
E2E_SERVERS=()
E2E_OUTPUT_BASES=()
E2E_AT_EXIT=()

e2e_cleanup() {
  local status=$? dir i
  # Commands registered with at_exit (e.g. stopping a cache server), newest first.
  for ((i = ${#E2E_AT_EXIT[@]} - 1; i >= 0; i--)); do
    eval "${E2E_AT_EXIT[i]}" || true
  done
  for dir in "${E2E_SERVERS[@]+"${E2E_SERVERS[@]}"}"; do
    (cd "$dir" && bazel shutdown >/dev/null 2>&1) || true
  done
  for dir in "${E2E_OUTPUT_BASES[@]+"${E2E_OUTPUT_BASES[@]}"}"; do
    (cd "$REPO_ROOT" && bazel --output_base="$dir" shutdown >/dev/null 2>&1) || true
  done
  # Bazel leaves its outputs read-only; make them removable for a non-root user too.
  chmod -R u+w "$E2E_TMP" 2>/dev/null || true
  rm -rf "$E2E_TMP"
  return "$status"
}
trap e2e_cleanup EXIT

# write_workspace DIR NAME DEPENDENCIES_ARGS: a WORKSPACE in DIR using this checkout as
# @rules_keras with the offline stand-ins of Bazel 4.2.3 (third_party/README.md), then
# rules_keras_dependencies(DEPENDENCIES_ARGS).
write_workspace() {
  local dir=$1 name=$2 args=$3 repo
  {
    echo "workspace(name = \"$name\")"
    echo "local_repository(name = \"rules_keras\", path = \"$REPO_ROOT\")"
    for repo in rules_cc rules_java remote_coverage_tools rules_python; do
      echo "local_repository(name = \"$repo\", path = \"$REPO_ROOT/third_party/$repo\")"
    done
    echo 'load("@rules_keras//rules:repositories.bzl", "rules_keras_dependencies")'
    echo "rules_keras_dependencies($args)"
  } >"$dir/WORKSPACE"
}

# at_exit COMMAND: run COMMAND (a string, eval'd) when the script exits, however it exits.
at_exit() {
  E2E_AT_EXIT+=("$1")
}

# bazel_in DIR ARGS...: bazel in workspace DIR, its own server stopped at exit, no
# convenience symlinks (they would land inside the source tree).
bazel_in() {
  local dir=$1
  shift
  E2E_SERVERS+=("$dir")
  (cd "$dir" && bazel --max_idle_secs=300 "$@")
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# expect_in FILE TEXT: FILE contains TEXT, else fail showing the file's end.
expect_in() {
  if ! grep -qF -- "$2" "$1"; then
    tail -40 "$1" >&2
    fail "expected to find '$2' in the output above"
  fi
  echo "ok: found '$2'"
}

E2E_TOOLS="$REPO_ROOT/tests/e2e/e2e_tools.py"

# bazel_ob OUTPUT_BASE COMMAND ARGS...: bazel on this repository's own workspace with its
# own output base (a folder under E2E_TMP), its server stopped at exit. Commands get
# --symlink_prefix=/: a build would otherwise point the developer's bazel-* symlinks at
# this output base, and a clean would delete them.
bazel_ob() {
  local base=$1 command=$2
  shift 2
  case " ${E2E_OUTPUT_BASES[*]-} " in
    *" $base "*) ;;
    *) E2E_OUTPUT_BASES+=("$base") ;;
  esac
  case "$command" in
    build | test | run | clean | aquery | cquery | info | coverage)
      set -- --symlink_prefix=/ "$@" ;;
  esac
  (cd "$REPO_ROOT" && bazel --output_base="$base" --max_idle_secs=300 "$command" "$@")
}

# run_logged NAME OUTPUT_BASE COMMAND ARGS...: bazel_ob with output in $E2E_TMP/NAME.log;
# on failure shows the log's end and fails.
run_logged() {
  local name=$1
  shift
  if ! bazel_ob "$@" >"$E2E_TMP/$name.log" 2>&1; then
    tail -60 "$E2E_TMP/$name.log" >&2
    fail "$name: bazel $* failed"
  fi
}

# e2e_output_base NAME: an output base of this checkout's own for the script, kept across
# runs (so its TensorFlow venv is made once, as in the main output base); scripts
# `bazel clean` it before a cold build.
e2e_output_base() {
  local key
  key=$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/rules_keras/e2e/$key/$1"
}

# now: seconds since the epoch, with microseconds. seconds_since START: e.g. "12.3".
now() {
  echo "$EPOCHREALTIME"
}
seconds_since() {
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# digest_outputs ROOT PATH...: `sha256sum` lines for every file under each PATH (a file or
# folder, relative to ROOT), sorted by path. Fails if a PATH is missing.
digest_outputs() {
  local root=$1 path
  shift
  for path in "$@"; do
    [ -e "$root/$path" ] || fail "missing output $root/$path"
  done
  (cd "$root" && find "$@" \( -type f -o -type l \) -print0 | sort -z | xargs -0 -r sha256sum)
}

# compare_outputs ROOT_A ROOT_B PATH...: compares the files under each PATH of two output
# trees by sha256; prints files compared / identical and each file that differs. Returns
# 0 only if there is at least one file and every file is identical.
compare_outputs() {
  local a=$1 b=$2
  shift 2
  digest_outputs "$a" "$@" >"$E2E_TMP/sums_a"
  digest_outputs "$b" "$@" >"$E2E_TMP/sums_b"
  python3 "$E2E_TOOLS" compare "$E2E_TMP/sums_a" "$E2E_TMP/sums_b"
}

# spawn_stats EXECUTION_LOG_JSON MNEMONIC: prints "SPAWNS HITS MISSES RUNNERS" for the
# spawns of MNEMONIC in a --execution_log_json_file (hits: remoteCacheHit, from a disk or
# remote cache; misses: spawns that ran).
spawn_stats() {
  python3 "$E2E_TOOLS" spawns "$1" "$2"
}

# process_summary LOG: Bazel's "N processes: ..." line from a build's output.
process_summary() {
  grep -E '^INFO: [0-9]+ process' "$1" | tail -1 | sed 's/^INFO: //' || true
}

# The exports the cache and reproducibility scripts build, and their tests.
CACHE_EXPORTS=(//models:my_export //tests/e2e_targets:custom_layer_export //tests/e2e_targets:mlp_export)
CACHE_TESTS=(//models:my_export_test //tests/e2e_targets:custom_layer_export_test //tests/e2e_targets:mlp_export_test)

# export_stats NAME: checks nothing; prints the KerasSavedModel figures of the build
# logged as NAME ($E2E_TMP/NAME.json and .log) and sets SPAWNS HITS MISSES RUNNERS.
export_stats() {
  read -r SPAWNS HITS MISSES RUNNERS < <(spawn_stats "$E2E_TMP/$1.json" KerasSavedModel)
  echo "  KerasSavedModel actions: $SPAWNS, cache hits: $HITS, misses (ran): $MISSES, runner: $RUNNERS"
  echo "  bazel: $(process_summary "$E2E_TMP/$1.log")"
}

# expect_exports_ran NAME BUILD: every CACHE_EXPORTS action of the build logged as NAME
# ran (no cache hit); BUILD names that build in the failure message.
expect_exports_ran() {
  export_stats "$1"
  [ "$MISSES" = "${#CACHE_EXPORTS[@]}" ] && [ "$HITS" = 0 ] ||
    fail "expected ${#CACHE_EXPORTS[@]} KerasSavedModel actions to run in $2"
}

# expect_exports_cached NAME COLD CACHE: every CACHE_EXPORTS action of the build logged as
# NAME came from CACHE; else prints what differs from the spawns of COLD (the build that
# filled it) and fails.
expect_exports_cached() {
  local name=$1 cold=$2 cache=$3
  export_stats "$name"
  [ "$HITS" = "${#CACHE_EXPORTS[@]}" ] && [ "$MISSES" = 0 ] && return 0
  python3 "$E2E_TOOLS" explain_misses "$E2E_TMP/$cold.json" "$E2E_TMP/$name.json" KerasSavedModel
  fail "expected all ${#CACHE_EXPORTS[@]} KerasSavedModel actions from $cache, got $HITS hits," \
    "$MISSES misses (what differs from the spawns of $cold is listed above; sources edited" \
    "during the test?)"
}

# expect_tests STATUS NAME [COLD]: every CACHE_TESTS target is reported STATUS ("PASSED"
# or "(cached) PASSED") in the build logged as NAME. On failure, with COLD (the name of
# the build that filled the cache), also prints why the test runs missed the cache.
expect_tests() {
  local status=$1 name=$2 cold=${3:-} test pattern
  pattern=${status//(/\\(}
  pattern=${pattern//)/\\)}
  for test in "${CACHE_TESTS[@]}"; do
    grep -qE "^$test +$pattern" "$E2E_TMP/$name.log" && continue
    tail -40 "$E2E_TMP/$name.log" >&2
    if [ -n "$cold" ]; then
      python3 "$E2E_TOOLS" explain_misses "$E2E_TMP/$cold.json" "$E2E_TMP/$name.json" TestRunner
    fi
    fail "$test was not '$status' in $name"
  done
  echo "ok: ${#CACHE_TESTS[@]} tests $status"
}

