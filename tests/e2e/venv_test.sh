#!/usr/bin/env bash
# A fresh output base gets the Python toolchain from rules_keras's per-machine cache
# folder: the first one installs uv, the lock and the installed tree into the cache; a
# second one installs nothing (the cache is unchanged and its files are hard links of
# the cache's) and its py_test passes. For both toolchain layouts; the hermetic one is
# also checked to be relocatable (no file names the output base or the cache, and it
# runs from a copy with only its own folder and the base system visible) and isolated
# (a build action re-run in bubblewrap from its input root alone imports the packages,
# and a real export run that way writes the build's bytes).
source "$(dirname "$0")/lib.sh"

command -v bwrap >/dev/null ||
  fail "bubblewrap is needed to run the hermetic toolchain isolated: apt-get install bubblewrap"

# A cache folder of the script's own, empty at the start: the first output base is cold.
# The last part uses the machine's own, which holds the project's full lock.
machine_cache_home=${XDG_CACHE_HOME:-$HOME/.cache}
export XDG_CACHE_HOME="$E2E_TMP/cache"
cache="$XDG_CACHE_HOME/rules_keras"

# A small lock: three packages (idna has a console script), their entries (versions and
# hashes) taken from the project's own lock.
ws="$E2E_TMP/ws"
mkdir -p "$ws"
awk '/^[^ #]/ { keep = ($1 ~ /^(absl-py|idna|six)==/) } keep' "$REPO_ROOT/requirements_lock.txt" >"$ws/small_lock.txt"
[ "$(grep -c '==' "$ws/small_lock.txt")" = 3 ] || fail "absl-py, idna and six not found in requirements_lock.txt"
write_workspace "$ws" venv_e2e 'requirements_lock = "//:small_lock.txt"'
# Debian's /etc/bazel/bazelrc keeps every sandbox folder; only the probe build below does.
echo "build --nosandbox_debug" >"$ws/.bazelrc"
cat >"$ws/BUILD" <<'BUILD'
load("@rules_python//python:defs.bzl", "py_binary", "py_test")

py_test(
    name = "packages_test",
    srcs = ["packages_test.py"],
)

py_binary(
    name = "probe",
    srcs = ["probe.py"],
)

genrule(
    name = "probe_output",
    outs = ["probe_output.txt"],
    cmd = "$(execpath :probe) $@",
    tools = [":probe"],
)
BUILD
cat >"$ws/packages_test.py" <<'PY'
import os
import sys

import absl
import six

assert "rules_keras_python" in sys.prefix, sys.prefix
assert absl.__file__.startswith(sys.prefix), (absl.__file__, sys.prefix)
if sys.prefix == sys.base_prefix:  # hermetic: the standard library is the toolchain's
    assert os.__file__.startswith(sys.prefix), (os.__file__, sys.prefix)
print("packages_test: six", six.__version__, "from", sys.prefix)
PY
cat >"$ws/probe.py" <<'PY'
import sys

import absl
import six

with open(sys.argv[1], "w") as f:
    f.write("six %s absl %s\n" % (six.__version__, absl.__name__))
PY

# fetch_in LAYOUT OUTPUT_BASE: fetches the toolchain repository; sets FETCH_S.
fetch_in() {
  local layout=$1 base=$2 start
  at_exit "(cd '$ws' && bazel --output_base='$base' shutdown >/dev/null 2>&1)"
  start=$(now)
  (cd "$ws" && bazel --output_base="$base" --max_idle_secs=300 fetch \
    --repo_env=RULES_KERAS_TOOLCHAIN_LAYOUT="$layout" @rules_keras_python//:all) \
    >"$base.fetch.log" 2>&1 || {
    tail -40 "$base.fetch.log" >&2
    fail "fetching the $layout toolchain in $base failed"
  }
  FETCH_S=$(seconds_since "$start")
}

# The cache's entries with inode and modification time: equal snapshots mean nothing
# was installed, rewritten or added.
snapshot() {
  find "$cache" -printf '%P %i %T@\n' | sort
}

for layout in venv hermetic; do
  echo "--- layout $layout"
  first="$E2E_TMP/ob_${layout}_first"
  second="$E2E_TMP/ob_${layout}_second"
  fetch_in "$layout" "$first"
  echo "  first output base: toolchain ready in ${FETCH_S}s"
  tree=$(find "$cache/pythons" -mindepth 1 -maxdepth 1 -name "$layout-*")
  [ -n "$tree" ] && [ -x "$cache/uv/$(sed -n 's/^uv==\([^ ]*\).*/\1/p' "$REPO_ROOT/rules/private/uv_lock.txt")/bin/uv" ] ||
    fail "the first output base did not install uv and the $layout tree into $cache"

  if [ "$layout" = hermetic ]; then
    # Built again from scratch, the tree has the same bytes: its files' digests (action
    # input keys) are the same in every build, so on every machine with this Python.
    digest_outputs "$tree" . >"$E2E_TMP/tree_sums_1"
    mv "$tree" "$tree.first"
    fetch_in "$layout" "$E2E_TMP/ob_${layout}_rebuilt"
    digest_outputs "$tree" . >"$E2E_TMP/tree_sums_2"
    diff "$E2E_TMP/tree_sums_1" "$E2E_TMP/tree_sums_2" >&2 ||
      fail "two builds of the hermetic tree differ (above)"
    echo "ok: two builds of the hermetic tree are byte-identical ($(wc -l <"$E2E_TMP/tree_sums_1") files)"
  fi

  snapshot >"$E2E_TMP/before"
  fetch_in "$layout" "$second"
  echo "  second output base: toolchain ready in ${FETCH_S}s"
  snapshot >"$E2E_TMP/after"
  diff "$E2E_TMP/before" "$E2E_TMP/after" >&2 || fail "the second output base changed the cache (above)"
  echo "ok: the second output base installed nothing"

  repo="$second/external/rules_keras_python"
  six_py=$(find "$repo/$layout" -name six.py -path '*site-packages*')
  cached_six=$(find "$tree" -name six.py -path '*site-packages*')
  [ -n "$six_py" ] && [ "$(stat -c %i "$six_py")" = "$(stat -c %i "$cached_six")" ] ||
    fail "$six_py is not a hard link of the cache's $cached_six"
  echo "ok: the output base's files are hard links of the cache's"

  # The tree is built in a staging folder and renamed: a script whose #! line names an
  # interpreter by the folder it was installed in (idna's console script) breaks.
  for script in "$repo/$layout"/bin/*; do
    [ -f "$script" ] && [ ! -L "$script" ] || continue
    head -c 2 "$script" | grep -q '^#!' || continue
    interpreter=$(head -n 1 "$script" | cut -c3- | cut -d' ' -f1)
    [ -x "$interpreter" ] || fail "$script names the interpreter $interpreter, which does not exist"
  done
  echo "ok: no script of the toolchain names a missing interpreter"

  log="$E2E_TMP/test_$layout.log"
  (cd "$ws" && bazel --output_base="$second" test --repo_env=RULES_KERAS_TOOLCHAIN_LAYOUT="$layout" \
    --spawn_strategy=linux-sandbox --incompatible_strict_action_env --nolegacy_external_runfiles \
    --test_output=all //:packages_test) >"$log" 2>&1 || {
    tail -40 "$log" >&2
    fail "the py_test failed with the $layout toolchain"
  }
  expect_in "$log" "packages_test: six"
  expect_in "$log" "rules_keras_python/$layout"
done

echo "--- the hermetic toolchain names no host path and runs from a copy"
hermetic="$E2E_TMP/ob_hermetic_second/external/rules_keras_python/hermetic"
if grep -rlF "$E2E_TMP" "$hermetic" >"$E2E_TMP/paths" 2>/dev/null; then
  head "$E2E_TMP/paths" >&2
  fail "files of the hermetic toolchain name the output base or the cache folder (above)"
fi
echo "ok: no file names the output base or the cache folder"
moved="$E2E_TMP/moved"
cp -a "$E2E_TMP/ob_hermetic_second/external/rules_keras_python" "$moved"

# isolated DIR COMMAND...: COMMAND with DIR (read-write, as /root_of_inputs and the
# working directory) and the base system (/usr, /lib, /lib64, /bin read-only) only; the
# environment is ISOLATED_ENV (--setenv NAME VALUE ...) and PATH=/bin:/usr/bin.
ISOLATED_ENV=()
isolated() {
  local dir=$1 system=() path
  shift
  for path in /usr /lib /lib64 /bin; do
    [ -e "$path" ] && system+=(--ro-bind "$path" "$path")
  done
  bwrap --unshare-all --die-with-parent "${system[@]}" --proc /proc --dev /dev --tmpfs /tmp \
    --bind "$dir" /root_of_inputs --chdir /root_of_inputs --clearenv \
    --setenv PATH /bin:/usr/bin --setenv HOME /tmp "${ISOLATED_ENV[@]+"${ISOLATED_ENV[@]}"}" "$@"
}
out=$(isolated "$moved" ./python3 -c 'import os, sys, six, absl; print(sys.prefix, os.__file__, six.__file__)') ||
  fail "the copied hermetic toolchain does not run isolated"
echo "  $out"
case "$out" in
  "/root_of_inputs/hermetic /root_of_inputs/hermetic/lib/"*" /root_of_inputs/hermetic/lib/"*) ;;
  *) fail "the copied toolchain's prefix, stdlib or packages are not under the copy: $out" ;;
esac
echo "ok: the copy runs with only its own folder and the base system"

# spawn_command EXECUTION_LOG_JSON MNEMONIC: the first MNEMONIC spawn's environment, one
# `--setenv NAME VALUE` a line, then its arguments, one a line.
spawn_command() {
  python3 -c '
import json, sys
decoder = json.JSONDecoder()
text = open(sys.argv[1]).read()
i = 0
while i < len(text):
    while i < len(text) and text[i].isspace():
        i += 1
    if i == len(text):
        break
    spawn, i = decoder.raw_decode(text, i)
    if spawn.get("mnemonic") == sys.argv[2]:
        for variable in spawn.get("environmentVariables", []):
            print("--setenv", variable["name"], variable["value"])
        print("\n".join(spawn["commandArgs"]))
        break
' "$1" "$2"
}

# probe_isolated LAYOUT: builds the probe genrule with LAYOUT's toolchain in that
# layout's second output base, then re-runs its command in bubblewrap with only a copy
# of its sandbox input root (real files, as a remote worker stages them) and the base
# system. Returns the command's status; the output is in $E2E_TMP/probe_LAYOUT.txt.
probe_isolated() {
  local layout=$1 base="$E2E_TMP/ob_$1_second" log="$E2E_TMP/probe_$1.log" sandbox inputs command
  (cd "$ws" && bazel --output_base="$base" build \
    --repo_env=RULES_KERAS_TOOLCHAIN_LAYOUT="$layout" --spawn_strategy=linux-sandbox \
    --incompatible_strict_action_env --nolegacy_external_runfiles --sandbox_debug \
    --execution_log_json_file="$E2E_TMP/probe_$layout.json" //:probe_output) >"$log" 2>&1 || {
    tail -40 "$log" >&2
    fail "building the probe action with the $layout toolchain failed"
  }
  # The genrule is the build's only sandboxed action: its folder is the only one kept.
  sandbox=$(find "$base/sandbox/linux-sandbox" -mindepth 3 -maxdepth 3 -path '*/execroot/venv_e2e')
  [ "$(echo "$sandbox" | wc -w)" = 1 ] && [ -d "$sandbox" ] ||
    fail "expected the probe action's one sandbox folder, found: $sandbox"
  inputs="$E2E_TMP/input_root_$layout"
  cp -rL "$sandbox" "$inputs"
  echo "  $layout: input root of $(find "$inputs" -type f | wc -l) files"
  rm -f "$inputs"/bazel-out/*/bin/probe_output.txt
  command=$(spawn_command "$E2E_TMP/probe_$layout.json" Genrule | tail -1)
  [ -n "$command" ] || fail "the execution log of the $layout build has no Genrule spawn"
  isolated "$inputs" /bin/bash -c "$command" >"$E2E_TMP/probe_$layout.err" 2>&1 || return 1
  cat "$inputs"/bazel-out/*/bin/probe_output.txt >"$E2E_TMP/probe_$layout.txt"
}

echo "--- a build action sees the packages through its inputs only"
probe_isolated hermetic || {
  cat "$E2E_TMP/probe_hermetic.err" >&2
  fail "the probe action failed when run isolated from its input root"
}
expect_in "$E2E_TMP/probe_hermetic.txt" "six $(sed -n 's/^six==\([^ ]*\).*/\1/p' "$ws/small_lock.txt") absl absl"
echo "ok: the action, isolated with its input root, imported the locked packages"
# Negative control: the venv layout's action does not carry its Python, so the same
# isolated run must fail; otherwise the check above proves nothing.
if probe_isolated venv; then
  fail "the venv layout's probe ran isolated: the isolation does not hide the output base"
fi
echo "ok: the venv layout's action fails isolated ($(tail -1 "$E2E_TMP/probe_venv.err"))"

echo "--- a real export, re-run isolated from its input root, gives the same bytes"
# The project's own lock and the machine's cache folder (TensorFlow is installed there
# once per machine) in an output base of this script's own, kept across runs.
export XDG_CACHE_HOME="$machine_cache_home"
base=$(e2e_output_base venv_hermetic)
flags=(--repo_env=RULES_KERAS_TOOLCHAIN_LAYOUT=hermetic --disk_cache= --noremote_accept_cached
  --spawn_strategy=linux-sandbox --strategy=KerasSavedModel=linux-sandbox)
run_logged export_clean "$base" clean "${flags[@]}"
rm -rf "$base/sandbox"
run_logged export "$base" build "${flags[@]}" --sandbox_debug \
  --execution_log_json_file="$E2E_TMP/export.json" //models:my_export
# The build also runs the provenance action (standard library only): the export's
# sandbox is the one that holds the exporter.
sandbox=$(for folder in $(find "$base/sandbox/linux-sandbox" -mindepth 3 -maxdepth 3 -path '*/execroot/rules_keras'); do
  if compgen -G "$folder/bazel-out/*/bin/export/exporter" >/dev/null; then echo "$folder"; fi
done)
[ "$(echo "$sandbox" | wc -w)" = 1 ] && [ -d "$sandbox" ] ||
  fail "expected the export action's one sandbox folder, found: $sandbox"
inputs="$E2E_TMP/export_input_root"
cp -rL "$sandbox" "$inputs"
echo "  input root: $(find "$inputs" -type f | wc -l) files, $(du -sh "$inputs" | cut -f1)"
spawn_command "$E2E_TMP/export.json" KerasSavedModel >"$E2E_TMP/export_command"
ISOLATED_ENV=()
mapfile -t lines <"$E2E_TMP/export_command"
command=()
for line in "${lines[@]}"; do
  if [[ "$line" == "--setenv "* ]]; then
    read -r _ name value <<<"$line"
    ISOLATED_ENV+=(--setenv "$name" "${value:-}")
  else
    command+=("$line")
  fi
done
[ "${#command[@]}" -gt 0 ] || fail "the execution log has no KerasSavedModel spawn"
# The outputs' folder: the flag file's (bazel-out/<configuration>/bin/models).
output=$(dirname "${command[-1]#--flagfile=}")
mkdir -p "$inputs/$output/my_export"
isolated "$inputs" "${command[@]}" >"$E2E_TMP/export_isolated.log" 2>&1 || {
  tail -30 "$E2E_TMP/export_isolated.log" >&2
  fail "the export action failed when run isolated from its input root"
}
compare_outputs "$base/execroot/rules_keras" "$inputs" "$output/my_export" "$output/my_export.signatures.json" ||
  fail "the isolated export's files differ from the build's"
echo "ok: the export, with only its input root and the base system, wrote the build's bytes"
