#!/usr/bin/env bash
# The venv repository rule fails with a clear message naming the lock file and the
# installer's (uv's) error when the install fails, leaving nothing half-built in the
# cache folder, and naming what it tried when no python3 fits.
source "$(dirname "$0")/lib.sh"

# A cache folder of the script's own: it starts empty, so uv is installed into it too.
export XDG_CACHE_HOME="$E2E_TMP/cache"

ws="$E2E_TMP/ws"
mkdir -p "$ws"
write_workspace "$ws" toolchain_errors 'requirements_lock = "//:bad_lock.txt"'
touch "$ws/BUILD"
# A real package with a wrong hash: uv downloads it and refuses it.
cat >"$ws/bad_lock.txt" <<'LOCK'
six==1.17.0 \
    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000
LOCK

echo "--- a lock whose install fails"
log="$E2E_TMP/bad_lock.log"
if bazel_in "$ws" fetch @rules_keras_python//:all >"$log" 2>&1; then
  fail "fetch succeeded with a lock whose hash is wrong"
fi
expect_in "$log" "could not install the locked Python packages"
expect_in "$log" "bad_lock.txt"
expect_in "$log" 'Hash mismatch for `six==1.17.0`'
[ -x "$XDG_CACHE_HOME/rules_keras/uv/$(sed -n 's/^uv==\([^ ]*\).*/\1/p' "$REPO_ROOT/rules/private/uv_lock.txt")/bin/uv" ] ||
  fail "uv was not installed into the cache folder $XDG_CACHE_HOME/rules_keras"
left=$(find "$XDG_CACHE_HOME/rules_keras/pythons" -mindepth 1 -maxdepth 1 2>/dev/null)
[ -z "$left" ] || fail "the failed install left behind: $left"
echo "ok: nothing half-built left in the cache folder"

echo "--- no suitable python3"
fake="$E2E_TMP/fake/python3"
mkdir -p "$(dirname "$fake")"
printf '#!/bin/sh\necho 3.9\n' >"$fake"
chmod +x "$fake"
log="$E2E_TMP/no_python.log"
if RULES_KERAS_PYTHON="$fake" bazel_in "$ws" fetch @rules_keras_python//:all >"$log" 2>&1; then
  fail "fetch succeeded with only Python 3.9"
fi
expect_in "$log" "rules_keras needs Python 3.11 or 3.12"
expect_in "$log" "$fake (Python 3.9)"
expect_in "$log" "RULES_KERAS_PYTHON"
