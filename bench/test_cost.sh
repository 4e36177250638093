#!/usr/bin/env bash
# What keras_saved_model_test costs against the export it checks, before and after a
# change, in one run:
#   bench/test_cost.sh [BASELINE_REV] [TEST_TARGET...]
# (default: the commit before the C++ loader check, and the example's and two zoo
# models' tests). For each test target, taking turns: the test process of this
# workspace and of BASELINE_REV's (a `git archive` in a scratch folder, its own output
# base), each run by `bazel test --nocache_test_results` under `/usr/bin/time` (the test
# program's own wall time, CPU time (user + system, its children's included: the C++
# checker's) and peak RSS, without Bazel's), and the export it checks in a fresh process
# with its build action's flags (as tests/zoo/measure.sh), also timed. CPU time matters
# as much as wall time: CI runs two tests at once on 2 cores. Prints a Markdown table.
# Not a test: the figures depend on the machine and its load.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=${1:-b98a8c4}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(//models:my_export_test //tests/zoo:review_classifier_test //tests/zoo:mobilenet_v2_test)

scratch=$(mktemp -d /tmp/test_cost.XXXXXX)
base_ws="$scratch/baseline"
mkdir -p "$base_ws"
git archive "$baseline" | tar -x -C "$base_ws"
wrapper="$scratch/time_test.sh"
cat >"$wrapper" <<'SH'
#!/bin/sh
exec /usr/bin/time -f "TEST_COST %e s %M KB %U %S" "$@"
SH
chmod +x "$wrapper"
cleanup() {
  (cd "$base_ws" && bazel --output_base="$scratch/ob" shutdown >/dev/null 2>&1) || true
  rm -rf "$scratch"
}
trap cleanup EXIT

# run_test WORKSPACE TARGET BAZEL_STARTUP_ARGS...: prints "WALL RSS_MB CPU" of the test process.
run_test() {
  local ws=$1 target=$2
  shift 2
  local testlog
  (cd "$ws" && bazel "$@" test --nocache_test_results --run_under="$wrapper" "$target" >/dev/null 2>&1) || {
    echo "FAILED - -"
    return
  }
  testlog="$(cd "$ws" && bazel "$@" info bazel-testlogs 2>/dev/null)/$(echo "${target#//}" | tr ':' '/')/test.log"
  awk '/^TEST_COST/ {printf "%s %.0f %.2f\n", $2, $4 / 1024, $6 + $7}' "$testlog" | tail -1
}

export_wall() {
  local package=$1 name=$2 bin execroot
  bin=$(./bazelw info bazel-bin 2>/dev/null)
  execroot=$(./bazelw info execution_root 2>/dev/null)
  (cd "$execroot" && /usr/bin/time -f "%e %U %S" -o "$scratch/export_time" "$bin/export/exporter" \
    --flagfile="$bin/$package/$name-0.params" --output_dir="$scratch/export_$name" \
    --manifest_out="$scratch/export_$name.json" >/dev/null 2>&1) &&
    awk '{printf "%s %.2f\n", $1, $2 + $3}' "$scratch/export_time" || echo "FAILED -"
  rm -rf "$scratch/export_$name" "$scratch/export_$name.json"
}

echo "Building both workspaces' targets (not measured)..." >&2
./bazelw build //export:exporter "${targets[@]}" >/dev/null 2>&1
(cd "$base_ws" && bazel --output_base="$scratch/ob" build "${targets[@]}" >/dev/null 2>&1)

printf '| test | export, fresh process: wall, CPU (s) | test before: wall, CPU (s) | test after: wall, CPU (s) | before / export: wall, CPU | after / export: wall, CPU | RSS before, after (MB) |\n|---|---|---|---|---|---|---|\n'
for target in "${targets[@]}"; do
  package=${target#//}
  package=${package%%:*}
  name=${target##*:}
  name=${name%_test}
  read -r before_s before_mb before_cpu < <(run_test "$base_ws" "$target" --output_base="$scratch/ob")
  read -r after_s after_mb after_cpu < <(run_test "$PWD" "$target")
  read -r export_s export_cpu < <(export_wall "$package" "$name")
  awk -v t="$target" -v e="$export_s" -v ec="$export_cpu" -v b="$before_s" -v bc="$before_cpu" \
    -v a="$after_s" -v ac="$after_cpu" -v bm="$before_mb" -v am="$after_mb" \
    'BEGIN { printf "| `%s` | %s, %s | %s, %s | %s, %s | %.2fx, %.2fx | %.2fx, %.2fx | %s, %s |\n",
      t, e, ec, b, bc, a, ac, b / e, bc / ec, a / e, ac / ec, bm, am }'
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
