# Sourced by scripts/test.sh and the benchmark scripts: a private PostgreSQL cluster in a
# temporary directory, on a free loopback port, stopped by `stop_postgres`.
#
# PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user
# (runuser); as anyone else it is the caller's own. Authentication is `trust` on 127.0.0.1
# only: the cluster is reachable from this machine alone and lives as long as the run.
#
# After `start_postgres DIR` these are exported:
#   ROSTER_TEST_PG_URL    postgres://postgres@127.0.0.1:PORT/postgres
#   ROSTER_TEST_PG_DATA   the cluster's data directory
#   ROSTER_TEST_PG_BIN    the directory of pg_ctl and friends
#   ROSTER_TEST_PG_RUNAS  the user the cluster runs as when we are root, else empty

pg_bin_dir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ]; then echo "$d"; fi
    done | sort -V | tail -1
}

pg_run() {
    if [ -n "$ROSTER_TEST_PG_RUNAS" ]; then
        runuser -u "$ROSTER_TEST_PG_RUNAS" -- "$@"
    else
        "$@"
    fi
}

start_postgres() {
    local dir="$1" port
    ROSTER_TEST_PG_BIN="${ROSTER_PG_BIN:-$(pg_bin_dir)}"
    if [ -z "$ROSTER_TEST_PG_BIN" ] || [ ! -x "$ROSTER_TEST_PG_BIN/initdb" ]; then
        echo "PostgreSQL's initdb was not found (install the postgresql Debian package)" >&2
        return 1
    fi
    ROSTER_TEST_PG_RUNAS=""
    if [ "$(id -u)" = 0 ]; then ROSTER_TEST_PG_RUNAS=postgres; fi
    mkdir -p "$dir"
    if [ -n "$ROSTER_TEST_PG_RUNAS" ]; then chown "$ROSTER_TEST_PG_RUNAS" "$dir"; fi
    chmod 700 "$dir"
    ROSTER_TEST_PG_DATA="$dir/data"
    pg_run "$ROSTER_TEST_PG_BIN/initdb" -D "$ROSTER_TEST_PG_DATA" -U postgres -A trust \
        --encoding UTF8 --locale C.UTF-8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        return 1
    }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >>"$ROSTER_TEST_PG_DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = ${ROSTER_PG_SHARED_BUFFERS:-256MB}
max_wal_size = ${ROSTER_PG_MAX_WAL_SIZE:-1GB}
fsync = on
CONF
    pg_run "$ROSTER_TEST_PG_BIN/pg_ctl" -D "$ROSTER_TEST_PG_DATA" -l "$dir/postgres.log" \
        -w -t 60 start >/dev/null || {
        cat "$dir/postgres.log" >&2
        return 1
    }
    ROSTER_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
    export ROSTER_TEST_PG_URL ROSTER_TEST_PG_DATA ROSTER_TEST_PG_BIN ROSTER_TEST_PG_RUNAS
    echo "== PostgreSQL $("$ROSTER_TEST_PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

stop_postgres() {
    if [ -n "${ROSTER_TEST_PG_DATA:-}" ] && [ -f "$ROSTER_TEST_PG_DATA/postmaster.pid" ]; then
        pg_run "$ROSTER_TEST_PG_BIN/pg_ctl" -D "$ROSTER_TEST_PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
}
