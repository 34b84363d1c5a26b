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
#   ROSTER_TEST_PG_TLS    a directory with ca.pem (the CA of the server's certificate, which
#                         names 127.0.0.1 and localhost) and client.pem / client.key (a
#                         client certificate for the role `roster_cert`)
#
# The cluster serves TLS too (ssl = on): connections may use it or not, except the role
# `roster_cert`, which must come over TLS with its client certificate (pg_hba `cert`).

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
    make_pg_tls "$dir/tls" || return 1
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >>"$ROSTER_TEST_PG_DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = ${ROSTER_PG_SHARED_BUFFERS:-256MB}
max_wal_size = ${ROSTER_PG_MAX_WAL_SIZE:-1GB}
fsync = on
ssl = on
ssl_cert_file = '$dir/tls/server.pem'
ssl_key_file = '$dir/tls/server.key'
ssl_ca_file = '$dir/tls/ca.pem'
CONF
    # Checked first: the certificate role over TLS with its certificate, and nothing else.
    { echo "hostssl all roster_cert 127.0.0.1/32 cert"
      echo "host all roster_cert 127.0.0.1/32 reject"
      cat "$ROSTER_TEST_PG_DATA/pg_hba.conf"; } >"$dir/pg_hba.conf"
    cp "$dir/pg_hba.conf" "$ROSTER_TEST_PG_DATA/pg_hba.conf"
    pg_run "$ROSTER_TEST_PG_BIN/pg_ctl" -D "$ROSTER_TEST_PG_DATA" -l "$dir/postgres.log" \
        -w -t 60 start >/dev/null || {
        cat "$dir/postgres.log" >&2
        return 1
    }
    pg_run "$ROSTER_TEST_PG_BIN/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE roster_cert LOGIN SUPERUSER" >/dev/null
    ROSTER_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
    ROSTER_TEST_PG_TLS="$dir/tls"
    export ROSTER_TEST_PG_URL ROSTER_TEST_PG_DATA ROSTER_TEST_PG_BIN ROSTER_TEST_PG_RUNAS ROSTER_TEST_PG_TLS
    echo "== PostgreSQL $("$ROSTER_TEST_PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

# A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate for the
# role roster_cert, in DIR (made with the openssl command line; the server's key readable by
# the cluster's user only).
make_pg_tls() {
    local dir="$1"
    mkdir -p "$dir"
    (
        cd "$dir" || exit 1
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
            -out ca.pem -days 2 -subj "/CN=Roster test PostgreSQL CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext &&
        printf 'extendedKeyUsage=clientAuth\n' >client.ext &&
        for who in server client; do
            cn=localhost
            if [ "$who" = client ]; then cn=roster_cert; fi
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$who.key" \
                -out "$who.csr" -subj "/CN=$cn" &&
            openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
                -out "$who.pem" -days 2 -extfile "$who.ext" || exit 1
        done
    ) >"$dir/openssl.log" 2>&1 || {
        cat "$dir/openssl.log" >&2
        return 1
    }
    chmod 600 "$dir/server.key" "$dir/client.key"
    if [ -n "$ROSTER_TEST_PG_RUNAS" ]; then chown -R "$ROSTER_TEST_PG_RUNAS" "$dir"; fi
}

stop_postgres() {
    if [ -n "${ROSTER_TEST_PG_DATA:-}" ] && [ -f "$ROSTER_TEST_PG_DATA/postmaster.pid" ]; then
        pg_run "$ROSTER_TEST_PG_BIN/pg_ctl" -D "$ROSTER_TEST_PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
}
