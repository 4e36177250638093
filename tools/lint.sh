#!/usr/bin/env bash
# Lints the whole tree; exits non-zero on any finding. ./test.sh runs it as one check.
#
#   ruff check and ruff format --check over every Python file (settings in ruff.toml);
#   buildifier --mode=check --lint=warn over every BUILD, .bzl, WORKSPACE, MODULE.bazel.
#
# Installs its pinned tools on the first run into a cache folder this project owns,
# ${RULES_KERAS_CACHE:-~/.cache/rules_keras}/lint, and reuses them after that: a second
# run installs nothing. `tools/lint.sh --fix` rewrites what the tools can fix instead.
set -euo pipefail
cd "$(dirname "$0")/.."

RUFF_VERSION=0.17.5
# ruff's wheels on PyPI for Linux, x86_64 and aarch64; pip refuses any other file.
RUFF_HASHES=(
  40ca8afaac309b41a5b2e09e4e7beb1f824826b93c25697c4d74f573324fba4e
  6f6a7b138edf9cc402ca736a59d9525e6d766e5395760b72e7e146e6251ac963
)
BUILDIFIER_VERSION=8.2.1
# sha256 of npm's @bazel/buildifier-8.2.1.tgz (the same file as the registry's sha512
# integrity eZ/Aq+2r4PcJa6LbPCT6ffgIJfTU/gYilqIzoX2OLM4nNkbQC6tTMPZNn7aHHjhGPxbNLv41zm4Xqt1olCLgXw==).
BUILDIFIER_TGZ_SHA256=b96ea9b13003036c801f52bee6f9b0314738f8432e5cb9d814c89f59292604ee

fix=false
if [ "${1:-}" = "--fix" ]; then
  fix=true
elif [ $# -gt 0 ]; then
  echo "usage: tools/lint.sh [--fix]" >&2
  exit 2
fi

cache=${RULES_KERAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rules_keras}/lint
ruff=$cache/ruff-$RUFF_VERSION/ruff
buildifier=$cache/buildifier-$BUILDIFIER_VERSION/buildifier

install_ruff() {
  [ -x "$ruff" ] && return
  echo "lint: installing ruff $RUFF_VERSION into ${ruff%/*}" >&2
  local tmp requirement="ruff==$RUFF_VERSION"
  tmp=$(mktemp -d)
  for hash in "${RUFF_HASHES[@]}"; do requirement+=" --hash=sha256:$hash"; done
  echo "$requirement" >"$tmp/requirements.txt"
  python3 -m venv "$tmp/venv"
  "$tmp/venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
    --require-hashes -r "$tmp/requirements.txt" >&2
  # ruff is one static binary: keep it, drop the venv that installed it.
  mkdir -p "${ruff%/*}"
  mv "$tmp/venv/bin/ruff" "$ruff.new.$$"
  mv "$ruff.new.$$" "$ruff"
  rm -rf "$tmp"
}

install_buildifier() {
  [ -x "$buildifier" ] && return
  local arch
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *)
      echo "lint: no buildifier binary for $(uname -m)" >&2
      return 1
      ;;
  esac
  if ! command -v npm >/dev/null 2>&1; then
    echo "lint: npm is needed once to fetch buildifier from the npm registry; install" \
      "Node.js and npm (Debian: apt-get install nodejs npm), or put a buildifier" \
      "$BUILDIFIER_VERSION binary at $buildifier" >&2
    return 1
  fi
  echo "lint: installing buildifier $BUILDIFIER_VERSION into ${buildifier%/*}" >&2
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@bazel/buildifier@$BUILDIFIER_VERSION" >/dev/null)
  local tgz=$tmp/bazel-buildifier-$BUILDIFIER_VERSION.tgz
  if ! echo "$BUILDIFIER_TGZ_SHA256  $tgz" | sha256sum --check --status; then
    echo "lint: $tgz does not have the pinned sha256 $BUILDIFIER_TGZ_SHA256" >&2
    rm -rf "$tmp"
    return 1
  fi
  tar -xzf "$tgz" -C "$tmp" "package/buildifier-linux_$arch"
  mkdir -p "${buildifier%/*}"
  mv "$tmp/package/buildifier-linux_$arch" "$buildifier.new.$$"
  chmod +x "$buildifier.new.$$"
  mv "$buildifier.new.$$" "$buildifier"
  rm -rf "$tmp"
}

# Every Starlark file of the tree, Bazel's output symlinks and .git left out.
starlark_files() {
  find . \( -name .git -o -name 'bazel-*' \) -prune -o -type f \
    \( -name BUILD -o -name BUILD.bazel -o -name '*.bzl' -o -name WORKSPACE \
    -o -name WORKSPACE.bazel -o -name MODULE.bazel \) -print | sed 's|^\./||' | sort
}

install_ruff
install_buildifier
mapfile -t starlark < <(starlark_files)

if $fix; then
  "$ruff" check --fix .
  "$ruff" format .
  "$buildifier" --mode=fix "${starlark[@]}" # formatting only: lint needs a human
  exit 0
fi

status=0
"$ruff" check --quiet . || status=1
"$ruff" format --check --quiet . || status=1

# Any file to reformat or lint warning fails; a rule that must stay native says why
# next to a `# buildifier: disable=...` comment.
"$buildifier" --mode=check --lint=warn "${starlark[@]}" || status=1

if [ "$status" -eq 0 ]; then
  echo "lint: ruff and buildifier found nothing"
else
  echo "lint: FAILED; tools/lint.sh --fix repairs formatting and some lint" >&2
fi
exit "$status"
