#!/usr/bin/env bash
# A local BuildGrid server for Bazel's remote flags, on 127.0.0.1 only.
#
#   tests/e2e/buildgrid.sh install        make (or reuse) the BuildGrid venv, print its path
#   tests/e2e/buildgrid.sh start DIR      start a cache-only server (ActionCache, CAS,
#                                         ByteStream; no execution, no database) on a
#                                         free port, state (config, CAS, log, pid) in
#                                         DIR; prints its URL, grpc://127.0.0.1:PORT
#   tests/e2e/buildgrid.sh start-execution DIR
#                                         the same plus remote execution: a PostgreSQL
#                                         for the scheduler (Unix socket only), the
#                                         Execution and Bots services, and one worker,
#                                         tests/e2e/rex/bot.py (bubblewrap-isolated)
#   tests/e2e/buildgrid.sh stop DIR       stop what was started with DIR, by PID
#
# BuildGrid comes from PyPI, pinned to BUILDGRID_VERSION (with psycopg2-binary for the
# scheduler's database), in a venv under ${XDG_CACHE_HOME:-$HOME/.cache}/rules_keras/
# (BUILDGRID_VENV overrides the path), made once (its cost: bench/README.md) and reused. The
# action cache lives in the server's memory (an LRU cache): a restarted server starts
# empty; the CAS is on disk in DIR. start-execution installs Debian's postgresql-15 and
# bubblewrap when they are missing (as root, like ./bazelw).
set -euo pipefail

BUILDGRID_VERSION=0.4.4
PSYCOPG2_VERSION=2.9.13
PINS="buildgrid==$BUILDGRID_VERSION psycopg2-binary==$PSYCOPG2_VERSION"
# The path names both pins: a venv of other pins (e.g. made by an older copy of this
# script in another checkout) is never replaced under a server that uses it.
VENV=${BUILDGRID_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rules_keras/buildgrid-$BUILDGRID_VERSION-psycopg2-$PSYCOPG2_VERSION-venv}
START_TIMEOUT_S=60
PG_BIN=/usr/lib/postgresql/15/bin
HERE=$(cd "$(dirname "$0")" && pwd)

abs_dir() {
  mkdir -p "$1" && (cd "$1" && pwd)
}

die() {
  echo "buildgrid.sh: $*" >&2
  exit 1
}

venv_ready() {
  [ -f "$VENV/.rules_keras_buildgrid" ] && [ "$(cat "$VENV/.rules_keras_buildgrid")" = "$PINS" ] &&
    [ -x "$VENV/bin/bgd" ]
}

install_venv() {
  if ! venv_ready; then
    mkdir -p "$(dirname "$VENV")"
    # One installer at a time: scripts running in parallel wait for it and reuse its venv.
    (flock 9 && { venv_ready || make_venv; }) 9>"$VENV.lock"
  fi
  echo "$VENV"
}

make_venv() {
  local pins=$PINS
  echo "buildgrid.sh: installing $pins into $VENV ..." >&2
  rm -rf "$VENV"
  local log
  log=$(mktemp)
  if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install --disable-pip-version-check \
    --only-binary=:all: $pins; } >"$log" 2>&1; then
    tail -30 "$log" >&2
    rm -rf "$VENV" "$log"
    die "could not install $pins from PyPI (pip's output above)"
  fi
  rm -f "$log"
  # Written last: a venv without it is incomplete and is made again next time.
  echo "$pins" >"$VENV/.rules_keras_buildgrid"
}

# write_config DIR PORT [DATABASE_URL]: the server's config; with a database URL, also
# the Execution and Bots services and their scheduler.
write_config() {
  local dir=$1 port=$2 database=${3-}
  {
    cat <<YAML
# REAPI server for rules_keras's e2e tests (written by tests/e2e/buildgrid.sh).
description: rules_keras e2e remote ${database:+execution and }cache
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
YAML
    if [ -n "$database" ]; then
      cat <<YAML
# Each open Execute call and the bot's long poll hold a thread: the default, 5 per CPU,
# refuses calls ("Concurrent RPC limit exceeded") as soon as a few actions run.
thread-pool-size: 512
# Bazel uploads each missing blob of an input tree (~11,000 for the TensorFlow
# toolchain) in its own call, all at once; past gRPC's default pending-request limits
# the server cancels them.
grpc-server-options:
  grpc.server.max_pending_requests: 100000
  grpc.server.max_pending_requests_hard_limit: 100000
  grpc.server_max_unrequested_time_in_server: 600
connections:
  - !sql-connection &database
    connection-string: "$database"
    pool-size: 20
    max-overflow: 20
schedulers:
  - !sql-scheduler &scheduler
    sql: *database
    storage: *cas
    action-cache: *action-cache
    # Job state is polled: the defaults (about 1 s, and 5 s after a failed assignment)
    # add more than a second to every action.
    poll-interval: 0.1
    bot-session-keepalive-timeout: 600
    assigners:
      - !priority-age-assigner
        count: 1
        interval: 0.05
        failure-backoff: 0.1
YAML
    fi
    cat <<YAML
# Bazel's default --remote_instance_name is "".
instances:
  - name: ""
    description: ActionCache, CAS and ByteStream${database:+, Execution and Bots}
    services:
      - !action-cache
        cache: *action-cache
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
YAML
    if [ -n "$database" ]; then
      cat <<YAML
      - !execution
        scheduler: *scheduler
YAML
    fi
  } >"$dir/buildgrid.yml"
}

listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# as_postgres COMMAND...: PostgreSQL refuses to run as root; as root, run it as the
# `postgres` user the Debian package creates.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

install_system_packages() {
  local packages=()
  [ -x "$PG_BIN/postgres" ] || packages+=(postgresql-15)
  command -v bwrap >/dev/null 2>&1 || packages+=(bubblewrap)
  [ ${#packages[@]} -gt 0 ] || return 0
  local install="apt-get update && apt-get install -y --no-install-recommends ${packages[*]}"
  [ "$(id -u)" = 0 ] || die "${packages[*]} missing. Run as root: $install"
  echo "buildgrid.sh: installing ${packages[*]} from Debian..." >&2
  DEBIAN_FRONTEND=noninteractive bash -c "$install" >&2
}

# start_database DIR: a throw-away PostgreSQL cluster on a Unix socket only (no TCP),
# without fsync; prints its SQLAlchemy URL. Its folder is outside DIR (the `postgres`
# user must own it, and DIR may sit in a folder only root can enter); DIR/database
# names it.
start_database() {
  local dir=$1 data
  data=$(mktemp -d "${TMPDIR:-/tmp}/rules_keras_postgres.XXXXXX")
  echo "$data" >"$dir/database"
  [ "$(id -u)" != 0 ] || chown postgres: "$data"
  as_postgres "$PG_BIN/initdb" --pgdata="$data/data" --username=bgd --auth=trust \
    --no-sync --encoding=UTF8 >"$dir/database.log" 2>&1 ||
    die "initdb failed: $(tail -5 "$dir/database.log")"
  as_postgres "$PG_BIN/pg_ctl" --pgdata="$data/data" --log="$data/server.log" --wait \
    --options="-c listen_addresses='' -c unix_socket_directories='$data' -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
    start >>"$dir/database.log" 2>&1 ||
    die "PostgreSQL did not start: $(tail -5 "$data/server.log" 2>/dev/null)"
  as_postgres "$PG_BIN/createdb" --host="$data" --username=bgd bgd >>"$dir/database.log" 2>&1 ||
    die "createdb failed: $(tail -5 "$dir/database.log")"
  # psycopg2: a plain postgresql:// URL makes SQLAlchemy look for psycopg 3.
  echo "postgresql+psycopg2://bgd@/bgd?host=$data"
}

stop_database() {
  local dir=$1 data pid
  [ -f "$dir/database" ] || return 0
  data=$(cat "$dir/database")
  if [ -f "$data/data/postmaster.pid" ]; then
    pid=$(head -1 "$data/data/postmaster.pid")
    # SIGINT is PostgreSQL's fast shutdown.
    stop_pid "$pid" INT PostgreSQL
  fi
  rm -rf "$data" "$dir/database"
}

# stop_pid PID SIGNAL NAME: sends SIGNAL, waits up to 10 s, then SIGKILL.
stop_pid() {
  local pid=$1 signal=$2 name=$3 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$signal" "$pid" 2>/dev/null || true
  for i in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  echo "buildgrid.sh: $name ($pid) ignored SIG$signal for 10 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

# start_server DIR [DATABASE_URL]: starts BuildGrid on a free port; prints the port.
start_server() {
  local dir=$1 database=${2-} venv port pid attempt deadline
  venv=$(install_venv)
  for attempt in 1 2 3; do
    port=$(python3 "$HERE/e2e_tools.py" free_port)
    write_config "$dir" "$port" "$database"
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
        echo "$port"
        return
      fi
      sleep 0.2
    done
    stop_pid "$pid" TERM "BuildGrid"
    rm -f "$dir/pid"
    echo "buildgrid.sh: attempt $attempt: no server on port $port; its log:" >&2
    tail -20 "$dir/server.log" >&2
  done
  die "could not start BuildGrid (log: $dir/server.log)"
}

# start_bot DIR PORT: the worker, its cache and staging folders in DIR/bot; waits until
# its bot session is open.
start_bot() {
  local dir=$1 port=$2 venv pid deadline
  venv=$(install_venv)
  mkdir -p "$dir/bot"
  rm -f "$dir/bot/ready"
  setsid "$venv/bin/python3" "$HERE/rex/bot.py" --server "127.0.0.1:$port" \
    --work-dir "$dir/bot" >"$dir/bot.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/bot.pid"
  deadline=$((SECONDS + START_TIMEOUT_S))
  while [ ! -f "$dir/bot/ready" ]; do
    kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ] ||
      die "the bot did not open a session; its log: $(tail -20 "$dir/bot.log")"
    sleep 0.2
  done
}

prepare_dir() {
  mkdir -p "$1/cas"
  [ ! -f "$1/pid" ] || die "$1/pid exists: a server may already run there (stop it first)"
}

start() {
  local dir=$1 port
  prepare_dir "$dir"
  port=$(start_server "$dir")
  echo "grpc://127.0.0.1:$port"
}

start_execution() {
  local dir=$1 venv database port
  prepare_dir "$dir"
  install_system_packages
  venv=$(install_venv)
  database=$(start_database "$dir")
  "$venv/bin/bgd" migrate apply "$database" >"$dir/migrate.log" 2>&1 ||
    die "bgd migrate apply failed: $(tail -20 "$dir/migrate.log")"
  port=$(start_server "$dir" "$database")
  start_bot "$dir" "$port"
  echo "grpc://127.0.0.1:$port"
}

# stop DIR: the bot, the server, then the database; each only if it was started.
stop() {
  local dir=$1
  if [ -f "$dir/bot.pid" ]; then
    stop_pid "$(cat "$dir/bot.pid")" TERM "the bot"
    rm -f "$dir/bot.pid"
  fi
  if [ -f "$dir/pid" ]; then
    stop_pid "$(cat "$dir/pid")" TERM "BuildGrid"
    rm -f "$dir/pid" "$dir/port"
  fi
  stop_database "$dir"
}

case "${1-}" in
  install) install_venv ;;
  start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$(abs_dir "$2")" ;;
  start-execution) [ $# -eq 2 ] || die "usage: $0 start-execution DIR"; start_execution "$(abs_dir "$2")" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 install | start DIR | start-execution DIR | stop DIR" ;;
esac
