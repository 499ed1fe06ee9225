#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on 127.0.0.1 for tests and local team-style trials.
#
#   scripts/start_postgres.sh start DATADIR PORT   -> initdb (if empty) + start; prints postgresql://... URL
#   scripts/start_postgres.sh stop  DATADIR        -> fast shutdown
#
# Uses the Debian server binaries under /usr/lib/postgresql/*/bin directly (no pg_ctlcluster, no
# system cluster touched). PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` system user. Authentication is `trust` on loopback only: never use this for real data.
set -euo pipefail

cmd=${1:?usage: start_postgres.sh start|stop DATADIR [PORT]}
datadir=${2:?DATADIR missing}
port=${3:-5432}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "start_postgres.sh: no PostgreSQL server under /usr/lib/postgresql/*/bin; run scripts/services.sh as root" >&2
  exit 2
fi

as_owner() {
  if [ "$(id -u)" = "0" ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    mkdir -p "$datadir"
    if [ "$(id -u)" = "0" ]; then
      chown postgres: "$datadir" && chmod 700 "$datadir"
      runuser -u postgres -- test -w "$datadir" || {
        echo "start_postgres.sh: user postgres cannot reach $datadir; put it under a world-traversable folder (e.g. mktemp -d -p /tmp then chmod 755)" >&2
        exit 1; }
    fi
    if [ ! -f "$datadir/PG_VERSION" ]; then
      as_owner "$bindir/initdb" -D "$datadir" -U postgres -A trust -E UTF8 --no-locale >"$datadir.initdb.log" 2>&1 || {
        cat "$datadir.initdb.log" >&2; exit 1; }
    fi
    # socket in the data dir, TCP on loopback only; enough connections for a handful of concurrent runs
    as_owner "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $datadir -c max_connections=200 -c fsync=off" start >/dev/null || {
        tail -n 30 "$datadir/server.log" >&2; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -f "$datadir/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null
    ;;
  *)
    echo "usage: start_postgres.sh start|stop DATADIR [PORT]" >&2; exit 2
    ;;
esac
