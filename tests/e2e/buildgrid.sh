#!/usr/bin/env bash
# A local BuildGrid server as a cache-only REAPI endpoint (ActionCache, CAS, ByteStream;
# no execution, no database) for Bazel's --remote_cache.
#
#   tests/e2e/buildgrid.sh install        make (or reuse) the BuildGrid venv, print its path
#   tests/e2e/buildgrid.sh start DIR      start a server on 127.0.0.1 with a free port,
#                                         state (config, CAS, log, pid) in DIR; prints
#                                         its URL, grpc://127.0.0.1:PORT
#   tests/e2e/buildgrid.sh stop DIR       stop the server started with DIR
#
# BuildGrid comes from PyPI, pinned to BUILDGRID_VERSION, in a venv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/rules_keras/ (BUILDGRID_VENV overrides the path), made
# once (its cost: bench/README.md) and reused. The action cache lives in the server's memory (an
# LRU cache): a restarted server starts empty; the CAS is on disk in DIR.
set -euo pipefail

BUILDGRID_VERSION=0.4.4
VENV=${BUILDGRID_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rules_keras/buildgrid-$BUILDGRID_VERSION-venv}
START_TIMEOUT_S=60

die() {
  echo "buildgrid.sh: $*" >&2
  exit 1
}

install_venv() {
  local marker="$VENV/.rules_keras_buildgrid"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$BUILDGRID_VERSION" ] && [ -x "$VENV/bin/bgd" ]; then
    echo "$VENV"
    return
  fi
  echo "buildgrid.sh: installing buildgrid==$BUILDGRID_VERSION into $VENV ..." >&2
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  local log
  log=$(mktemp)
  if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install --disable-pip-version-check \
    --only-binary=:all: "buildgrid==$BUILDGRID_VERSION"; } >"$log" 2>&1; then
    tail -30 "$log" >&2
    rm -rf "$VENV" "$log"
    die "could not install buildgrid==$BUILDGRID_VERSION from PyPI (pip's output above)"
  fi
  rm -f "$log"
  # Written last: a venv without it is incomplete and is made again next time.
  echo "$BUILDGRID_VERSION" >"$marker"
  echo "$VENV"
}

write_config() {
  local dir=$1 port=$2
  cat >"$dir/buildgrid.yml" <<YAML
# Cache-only REAPI server for rules_keras's e2e tests (written by tests/e2e/buildgrid.sh).
description: rules_keras e2e remote cache
server:
  - !channel
    address: "127.0.0.1:$port"
    insecure-mode: true
authorization:
  method: none
monitoring:
  enabled: false
storages:
  - !disk-storage &cas
    path: $dir/cas
caches:
  - !lru-action-cache &action-cache
    storage: *cas
    max-cached-refs: 10000
    allow-updates: true
    cache-failed-actions: false
# Bazel's default --remote_instance_name is "".
instances:
  - name: ""
    description: ActionCache, CAS and ByteStream; no execution
    services:
      - !action-cache
        cache: *action-cache
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
YAML
}

listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local dir=$1 venv port pid attempt deadline
  venv=$(install_venv)
  mkdir -p "$dir/cas"
  dir=$(cd "$dir" && pwd)
  [ ! -f "$dir/pid" ] || die "$dir/pid exists: a server may already run there (stop it first)"
  for attempt in 1 2 3; do
    port=$(python3 "$(dirname "$0")/e2e_tools.py" free_port)
    write_config "$dir" "$port"
    "$venv/bin/bgd" server lint "$dir/buildgrid.yml" >"$dir/lint.log" 2>&1 ||
      die "bgd server lint rejected $dir/buildgrid.yml: $(cat "$dir/lint.log")"
    # Its own session, so it outlives this script and no terminal signal reaches it.
    setsid "$venv/bin/bgd" server start "$dir/buildgrid.yml" >"$dir/server.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/pid"
    deadline=$((SECONDS + START_TIMEOUT_S))
    while [ "$SECONDS" -lt "$deadline" ] && kill -0 "$pid" 2>/dev/null; do
      if listening "$port"; then
        echo "$port" >"$dir/port"
        echo "grpc://127.0.0.1:$port"
        return
      fi
      sleep 0.5
    done
    stop "$dir"
    echo "buildgrid.sh: attempt $attempt: no server on port $port; its log:" >&2
    tail -20 "$dir/server.log" >&2
  done
  die "could not start BuildGrid (log: $dir/server.log)"
}

stop() {
  local dir=$1 pid i
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "buildgrid.sh: server $pid ignored SIGTERM for 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$dir/pid" "$dir/port"
}

case "${1-}" in
  install) install_venv ;;
  start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 install | start DIR | stop DIR" ;;
esac
