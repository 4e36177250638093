#!/usr/bin/env bash
# For a CI with Bazel 7, 8 or 9 (bzlmod): builds and tests this module workspace, which
# depends on rules_keras through local_path_override. Not a *_test.sh: ./test.sh runs
# on Bazel 4.2.3, which cannot read MODULE.bazel. Needs network access to the Bazel
# Central Registry and PyPI.
set -euo pipefail
cd "$(dirname "$0")"

major=$(bazel --version | sed -n 's/^bazel \([0-9]*\).*/\1/p')
if [ -z "$major" ] || [ "$major" -lt 7 ]; then
  echo "run.sh: needs Bazel 7 or later with bzlmod; found: $(bazel --version)" >&2
  exit 2
fi
bazel test --symlink_prefix=/ //classifier:all
