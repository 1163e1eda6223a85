#!/usr/bin/env bash
# Starts (or reuses) a private PostgreSQL server for the tests: its own data directory, a Unix
# socket in a temp directory, no TCP, trust authentication. Prints the server's URL, which the
# tests read from WT_TEST_PG. `tests/pg-server.sh stop` stops it.
set -euo pipefail
dir=${WT_TEST_PG_DIR:-/tmp/wt-test-pg}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ ! -x "$bindir/initdb" ]; then
  echo "pg-server: PostgreSQL server binaries not found; install them (apt-get install postgresql)" >&2
  exit 3
fi
# initdb refuses to run as root: as root, the server runs as the postgres user.
if [ "$(id -u)" = 0 ]; then
  user=postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  user=$(id -un)
  as_owner() { "$@"; }
fi
if [ "${1:-}" = stop ]; then
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  exit 0
fi
if ! as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  mkdir -p "$dir/sock"
  [ "$user" = postgres ] && chown -R postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$bindir/initdb" -D "$dir/data" -A trust -U "$user" --no-sync >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 3; }
  fi
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir/sock -c listen_addresses='' -c fsync=off -c max_connections=300" start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 3; }
fi
echo "postgres:///postgres?host=$dir/sock&user=$user"
