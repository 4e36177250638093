#!/usr/bin/env bash
# Regenerates requirements_lock.txt (every package pinned, with hashes) from
# requirements.in, using pip-tools in a throw-away venv. Run it after editing
# requirements.in; the next build re-creates Bazel's venv because the lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet pip-tools
"$tmp/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links \
  --output-file requirements_lock.txt requirements.in
echo "Updated requirements_lock.txt"
