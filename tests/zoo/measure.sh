#!/usr/bin/env bash
# Measures one-shot exports of zoo models: wall time, peak RSS and the exporter's own
# phase timings, with the exact flags of each model's build action.
#   tests/zoo/measure.sh mobilenet_v2 masked_lstm ...   (default: every zoo model)
# Not a test: the figures depend on the machine and its load.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -eq 0 ]; then
  set -- $(./bazelw query 'kind("keras_saved_model", //tests/zoo:all)' 2>/dev/null | sed 's/.*://')
fi
./bazelw build //export:exporter $(printf '//tests/zoo:%s ' "$@") >/dev/null 2>&1 || true
execroot=$(./bazelw info execution_root 2>/dev/null)
bin=$(./bazelw info bazel-bin 2>/dev/null)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '| model | export wall (s) | peak RSS (MB) | exporter phases |\n|---|---|---|---|\n'
for name in "$@"; do
  params="$bin/tests/zoo/$name-0.params"
  if [ ! -f "$params" ]; then
    printf '| %s | - | - | no flagfile: the build action did not run |\n' "$name"
    continue
  fi
  # Later flags win: the export goes to a scratch folder, with its timings printed.
  if (cd "$execroot" && /usr/bin/time -v -o "$tmp/time" "$bin/export/exporter" \
    --flagfile="$params" --output_dir="$tmp/$name" --manifest_out="$tmp/$name.json" \
    --noquiet >"$tmp/out" 2>&1); then
    # "exporter: wrote DIR (MODES, verified (...); load 1.20 s, trace 3.40 s, ...)"
    phases=$(sed -n 's/^exporter: wrote .*; \(.*\))$/\1/p' "$tmp/out")
  else
    cause=$(grep -m1 '^exporter: error' "$tmp/out" || grep -E '^[A-Za-z.]*(Error|Exception):' "$tmp/out" | tail -1 || true)
    phases="FAILED: ${cause:0:120}"
  fi
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.1f", s}' "$tmp/time")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$tmp/time")
  printf '| %s | %s | %s | %s |\n' "$name" "$wall" "$rss" "$phases"
done
