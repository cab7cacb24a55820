#!/usr/bin/env bash
# Private PostgreSQL cluster for duhub dev/tests (never the system "main" cluster).
# Usage: pg.sh up|down|status|reset|url      (see README.md beside this file)
set -euo pipefail
umask 022   # dirs we create must stay traversable for the postgres user

PORT="${DUHUB_PG_PORT:-55432}"
DSN="postgresql://duhub:duhub@127.0.0.1:${PORT}/duhub"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
RUN_DIR="$(realpath -m "${DUHUB_RUN_DIR:-$REPO_ROOT/.run}")"
# Caller's PG* variables (PGHOST, PGPORT, PGDATA...) must not redirect our tools.
for v in $(compgen -e | grep '^PG' || true); do unset "$v"; done
cd /   # postgres cannot chdir into e.g. /root; all paths below are absolute

log() { echo "pg.sh: $*" >&2; }

# Run a command as the cluster owner: postgres when we are root (PostgreSQL
# refuses to run as root), otherwise the calling user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Newest installed server binaries; install them only when `up` needs them.
find_bin() { BIN="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)"; [ -x "$BIN/initdb" ]; }
ensure_bin() {
  find_bin && return 0
  log "no PostgreSQL server found, installing it with apt"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  find_bin || { log "PostgreSQL install failed"; exit 1; }
}

# BASE holds data/, postgres.log and the unix socket. If the postgres user cannot
# traverse to RUN_DIR (e.g. a clone under /root, mode 700), use a fallback dir.
resolve_base() {
  BASE="$RUN_DIR/postgres"
  [ "$(id -u)" = 0 ] || return 0
  local d="$RUN_DIR"; while [ ! -e "$d" ]; do d="$(dirname "$d")"; done
  if ! runuser -u postgres -- test -x "$d"; then
    local fb=/tmp; [ -d /var/lib/postgresql ] && fb=/var/lib/postgresql
    BASE="$fb/duhub-pg-$PORT"
    log "postgres user cannot reach $RUN_DIR; using $BASE instead"
  fi
}

set_paths() {
  resolve_base
  DATA="$BASE/data"; LOGFILE="$BASE/postgres.log"; SOCK="$BASE"
  # A unix socket path is limited to 107 bytes ("$SOCK/.s.PGSQL.$PORT"), so deep
  # checkouts get a short socket dir in /tmp instead.
  if [ "${#SOCK}" -gt 85 ]; then SOCK="/tmp/duhub-pg-sock-$PORT"; fi
}

# A postmaster killed with -9 leaves postmaster.pid and the socket's .lock behind, and
# PID 1 here does not reap orphans: the dead PID stays a zombie, which pg_ctl and
# postgres both take for a live server (kill -0 succeeds). Drop lock files whose PID
# is not a live postgres.
clear_stale_locks() {
  local f pid
  for f in "$DATA/postmaster.pid" "$SOCK/.s.PGSQL.$PORT.lock"; do
    [ -f "$f" ] || continue
    pid="$(head -n1 "$f")"
    if [ ! -e "/proc/$pid" ] || grep -qs '^State:[[:space:]]*Z' "/proc/$pid/status" || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != postgres ]; then
      log "removing stale $f (PID $pid is not a live postgres)"; rm -f "$f"
    fi
  done
}

pg_running() { [ -f "$DATA/PG_VERSION" ] && find_bin && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

# Answering = TCP accepts and duhub can log in with its password.
answering() {
  find_bin || return 1
  "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U duhub -d duhub -t 2 &&
    PGPASSWORD=duhub PGCONNECT_TIMEOUT=3 "$BIN/psql" -X -qAt -d "$DSN" -c 'SELECT 1' >/dev/null 2>&1
}

fail() { log "$*"; [ -f "$LOGFILE" ] && { echo "--- tail of $LOGFILE ---" >&2; tail -n 40 "$LOGFILE" >&2; }; exit 1; }

cmd_up() {
  if answering; then echo "postgres ready at $DSN"; return 0; fi
  ensure_bin; set_paths; clear_stale_locks
  if pg_running; then
    # This run dir's cluster is up on another port: rewriting duhub.conf below would move it
    # there at its next restart (under the feet of everyone using it), and nothing would
    # answer on the port asked meanwhile.
    local running; running="$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true)"
    if [ -n "$running" ] && [ "$running" != "$PORT" ]; then
      log "the cluster in $DATA runs on port $running, not $PORT: stop it first" \
        "(DUHUB_PG_PORT=$running pg.sh down), or give DUHUB_RUN_DIR for a second cluster"
      exit 1
    fi
  fi
  mkdir -p "$BASE" "$SOCK"
  # Keep the default in-repo run dir out of git without touching the repo's files.
  [ -e "$RUN_DIR/.gitignore" ] || [ "$BASE" != "$RUN_DIR/postgres" ] || echo '*' >"$RUN_DIR/.gitignore"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$BASE" "$SOCK"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initdb in $DATA"
    # -k: data checksums; peer auth on the socket (only for the postgres admin
    # user), scram passwords over TCP. Text compares bytewise (collation C: the same
    # code-point order C.UTF-8 gives, without strcoll): by measure the read model's
    # writes took 7% less time (the rollup keys are text).
    as_pg "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 --lc-collate=C -k \
      --auth-local=peer --auth-host=scram-sha-256 >"$BASE/initdb.log" 2>&1 \
      || { cat "$BASE/initdb.log" >&2; fail "initdb failed"; }
    echo "include 'duhub.conf'" >>"$DATA/postgresql.conf"
  fi
  # Rewritten on every start so DUHUB_PG_PORT / edits here take effect.
  # Sized for a small test box; fsync/synchronous_commit stay ON (durability is tested).
  cat >"$DATA/duhub.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
password_encryption = 'scram-sha-256'
timezone = 'UTC'
EOF
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA/duhub.conf"
  if ! pg_running; then
    # -w -t 60: wait up to 60 s (crash recovery after a kill can take a while).
    # 9>&-: the server must not inherit the flock fd, or it would hold the lock forever.
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 start >/dev/null 9>&- || fail "pg_ctl start failed"
  fi
  # pg_ctl -w already waited; this covers a server we found running but still in
  # recovery. Up to 30 s.
  for _ in $(seq 60); do "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U duhub -d duhub && break; sleep 0.5; done
  # Idempotent role + database (ALTER re-asserts the password every time).
  as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d postgres >/dev/null <<'SQL' || fail "creating role/database failed"
SELECT 'CREATE ROLE duhub' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'duhub') \gexec
ALTER ROLE duhub LOGIN CREATEDB PASSWORD 'duhub';
SELECT 'CREATE DATABASE duhub OWNER duhub' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'duhub') \gexec
SQL
  answering || fail "server started but 'SELECT 1' as duhub over TCP failed"
  echo "postgres ready at $DSN"
}

cmd_down() {
  set_paths; clear_stale_locks
  if pg_running; then as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null; log "stopped"
  else log "not running"; fi
}

cmd_status() {
  set_paths
  if answering; then echo "running: $DSN (data $DATA)"; else echo "not answering on 127.0.0.1:$PORT (data $DATA)"; return 1; fi
}

cmd_reset() {
  cmd_down   # also sets the paths
  case "$BASE" in */postgres|*/duhub-pg-*) rm -rf "$BASE" ;; *) fail "refusing to delete $BASE" ;; esac
  [ "$SOCK" = "$BASE" ] || rm -rf "$SOCK"
  log "deleted $BASE"
}

# Serialize up/down/reset (e.g. parallel test workers all calling `up`).
case "${1:-}" in up|down|reset) exec 9>"/tmp/duhub-pg-$PORT-$(id -u).lock"; flock 9 ;; esac
case "${1:-}" in
  up) cmd_up ;; down) cmd_down ;; status) cmd_status ;; reset) cmd_reset ;; url) echo "$DSN" ;;
  *) echo "usage: $0 up|down|status|reset|url" >&2; exit 2 ;;
esac
