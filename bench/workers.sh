#!/usr/bin/env bash
# Benchmark of the persistent worker: builds the 20 small exports of
# //bench/many_models with and without workers, cold (no worker running yet) and warm
# (workers alive from the previous build), interleaved, and prints the wall times and
# the ratio with/without. Not part of ./test.sh.
#
# Usage: bench/workers.sh [REPEAT]   (default 2)
# It uses its own output base (kept between runs, so the TensorFlow venv is made once):
# ${XDG_CACHE_HOME:-$HOME/.cache}/rules_keras/bench_output_base.
set -euo pipefail
cd "$(dirname "$0")/.."

repeat=${1:-2}
base="${XDG_CACHE_HOME:-$HOME/.cache}/rules_keras/bench_output_base"
target=//bench/many_models:all_exports
bazel_b() { bazel --output_base="$base" "$@"; }

# build_time MODE TEMPERATURE: clean, then time one build of the 20 exports.
build_time() {
  local mode=$1 temperature=$2 flags=() start end
  [ "$mode" = without ] && flags=(--strategy=KerasSavedModel=sandboxed)
  if [ "$temperature" = cold ]; then
    bazel_b shutdown >/dev/null 2>&1 # ends the workers with the server
    bazel_b info >/dev/null 2>&1     # server start is not what is measured
  fi
  bazel_b clean >/dev/null 2>&1
  start=$EPOCHREALTIME
  bazel_b build --symlink_prefix=/ "${flags[@]}" "$target" >"$log" 2>&1 || {
    tail -30 "$log" >&2
    exit 1
  }
  end=$EPOCHREALTIME
  python3 -c "print(f'{$end - $start:.1f}')"
}

log=$(mktemp)
trap 'rm -f "$log"; bazel_b shutdown >/dev/null 2>&1 || true' EXIT
echo "warming up: TensorFlow venv and analysis cache in $base" >&2
bazel_b build --symlink_prefix=/ --nobuild "$target" >/dev/null 2>&1

declare -A total=()
printf '%-6s %-8s %-8s %8s\n' run workers state seconds
for ((i = 1; i <= repeat; i++)); do
  for temperature in cold warm; do
    for mode in without with; do
      seconds=$(build_time "$mode" "$temperature")
      printf '%-6s %-8s %-8s %8s\n' "$i" "$mode" "$temperature" "$seconds"
      total[$mode.$temperature]=$(python3 -c "print(${total[$mode.$temperature]:-0} + $seconds)")
    done
  done
done

echo
for temperature in cold warm; do
  python3 - "$temperature" "${total[without.$temperature]}" "${total[with.$temperature]}" "$repeat" <<'PY'
import sys
state, without, with_, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
ratio = with_ / without
verdict = "meets" if ratio <= 0.4 else "misses"
print(f"{state}: 20 exports without workers {without / n:.1f} s, with workers {with_ / n:.1f} s,"
      f" ratio {ratio:.2f} ({verdict} the 0.4x target)")
PY
done
