#!/bin/sh
# The test's runfiles hold the genrule's output: the remote worker staged them.
set -eu
out=tests/e2e/rex/system_python.txt
grep -q '^(3, ' "$out"
grep -qx hidden "$out"
