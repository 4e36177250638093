#!/usr/bin/env bash
# Regenerates requirements_lock.txt (every package pinned, with hashes) from
# requirements.in and requirements_overrides.txt with uv, the version that
# rules/private/uv_lock.txt pins, installed into a throw-away folder. Run it after
# editing either file; the next build re-creates Bazel's venv because the lock changed.
# Pins already in the lock are kept where they still fit (uv prefers them).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip install --quiet --require-hashes --only-binary=:all: --no-deps \
  --target "$tmp/uv" -r rules/private/uv_lock.txt
"$tmp/uv/bin/uv" pip compile --quiet --python "$python" --generate-hashes \
  --override requirements_overrides.txt \
  --custom-compile-command tools/update_lock.sh \
  --output-file requirements_lock.txt requirements.in
echo "Updated requirements_lock.txt"
