#!/bin/bash
# faafo role installer: one host of a faafo deployment, from a shell or as cloud-init user data.
#
# The original's install.sh, rewritten: the same roles and URL flags, plus what it
# lacked (RabbitMQ's own user instead of guest, a database user, API tokens, a
# process supervisor that restarts on failure and stops gracefully).
#
#   install.sh [-i faafo|messaging|database|loadbalancer]... [-r api|worker|demo]...
#              [-e ENDPOINT_URL] [-m TRANSPORT_URL] [-d DATABASE_URL] [-b BACKENDS]
#              [-t CLIENT_TOKEN] [-w WORKER_TOKEN] [-n NAME] [-s PIP_SOURCE]
#              [-o SECTION.OPTION=VALUE]...
#   install.sh -P unit-api|unit-worker|haproxy   print a generated file and exit
#
#   -i faafo         install the faafo package (pip, into $FAAFO_VENV)
#   -i messaging     RabbitMQ, with the user, password and vhost of -m (guest is deleted)
#   -i database      PostgreSQL or MariaDB (from the scheme of -d), with the database,
#                    user and password of -d, reachable from other hosts
#   -i loadbalancer  HAProxy in front of the API servers of -b (host:port,host:port)
#   -r api           run faafo-api (port 80 unless -o api.bind_port=N)
#   -r worker        run faafo-worker, delivering to -e (a comma-separated list fails over)
#   -r demo          create a few fractals once through -e
#
# Passwords inside the URLs must be URL-safe (letters, digits, - _ . ~): they are
# written as given into the configuration of the servers and of faafo.
#
# Environment (all optional; the defaults suit a real host):
#   FAAFO_PIP_SOURCE   default of -s: what pip installs (a wheel, a directory, a git URL,
#                      a name on your index); default: the checkout this script sits in.
#                      PIP_INDEX_URL and the other PIP_* variables are honoured by pip
#   FAAFO_VENV         virtualenv for faafo (default /opt/faafo)
#   FAAFO_PYTHON       an interpreter that already has faafo: nothing is installed
#   FAAFO_PREFIX       root for etc/, var/ and run/ (default /): several "hosts" on one
#                      machine (network namespaces) keep their files apart
#   FAAFO_SUPERVISOR   systemd | background (default: systemd when it is running)
#   FAAFO_NO_APT=1     never call apt-get: the servers must already be installed
#   FAAFO_STOP_TIMEOUT seconds a service may take to stop on SIGTERM (default 70)
#   FAAFO_CLIENT_TOKEN / FAAFO_WORKER_TOKEN   defaults of -t / -w (keeps them out of ps)
set -eu

PROG=${0##*/}
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '8,21p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//' >&2 || true
    exit 2
}

# ---------------------------------------------------------------- options

INSTALL=""
RUN=""
ENDPOINT_URL="${FAAFO_ENDPOINT_URL:-}"
TRANSPORT_URL="${FAAFO_TRANSPORT_URL:-}"
DATABASE_URL="${FAAFO_DATABASE_URL:-}"
BACKENDS=""
CLIENT_TOKEN="${FAAFO_CLIENT_TOKEN:-}"
WORKER_TOKEN="${FAAFO_WORKER_TOKEN:-}"
NAME=""
EXTRA=""
PRINT=""
SCRIPT_DIR=$(cd "$(dirname "$0")" 2>/dev/null && pwd || echo /)
if [ -f "$SCRIPT_DIR/../pyproject.toml" ]; then
    DEFAULT_SOURCE=$(cd "$SCRIPT_DIR/.." && pwd)
else
    DEFAULT_SOURCE=""
fi
PIP_SOURCE="${FAAFO_PIP_SOURCE:-$DEFAULT_SOURCE}"

while getopts "i:r:e:m:d:b:t:w:n:s:o:P:h" opt; do
    case $opt in
        i) case $OPTARG in faafo|messaging|database|loadbalancer) ;;
               *) die "unknown component -i $OPTARG" ;; esac
           INSTALL="$INSTALL $OPTARG" ;;
        r) case $OPTARG in api|worker|demo) ;; *) die "unknown role -r $OPTARG" ;; esac
           RUN="$RUN $OPTARG" ;;
        e) ENDPOINT_URL=$OPTARG ;;
        m) TRANSPORT_URL=$OPTARG ;;
        d) DATABASE_URL=$OPTARG ;;
        b) BACKENDS=$OPTARG ;;
        t) CLIENT_TOKEN=$OPTARG ;;
        w) WORKER_TOKEN=$OPTARG ;;
        n) NAME=$OPTARG ;;
        s) PIP_SOURCE=$OPTARG ;;
        o) case $OPTARG in api.*=*|worker.*=*|DEFAULT.*=*) ;;
               *) die "-o wants SECTION.OPTION=VALUE (api, worker or DEFAULT)" ;; esac
           EXTRA="$EXTRA
$OPTARG" ;;
        P) PRINT=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage

has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }

PREFIX="${FAAFO_PREFIX:-}"
PREFIX=${PREFIX%/}
ETC_DIR="$PREFIX/etc/faafo"
CONFIG_FILE="$ETC_DIR/faafo.conf"
STATE_DIR="$PREFIX/var/lib/faafo"
LOG_DIR="$PREFIX/var/log/faafo"
RUN_DIR="$PREFIX/run/faafo"
VENV="${FAAFO_VENV:-/opt/faafo}"
STOP_TIMEOUT="${FAAFO_STOP_TIMEOUT:-70}"
if [ -n "${FAAFO_PYTHON:-}" ]; then
    BIN_DIR=$(dirname "$FAAFO_PYTHON")
else
    BIN_DIR="$VENV/bin"
fi
SUPERVISOR="${FAAFO_SUPERVISOR:-}"
if [ -z "$SUPERVISOR" ]; then
    if [ -d /run/systemd/system ]; then SUPERVISOR=systemd; else SUPERVISOR=background; fi
fi
case $SUPERVISOR in systemd|background) ;; *) die "FAAFO_SUPERVISOR: systemd or background" ;; esac

# ---------------------------------------------------------------- generated files

# The systemd units and the HAProxy configuration are printed by these functions so
# that this one file is enough as user data; deploy/ holds the same text rendered
# with the defaults, and a test keeps the two identical.

unit_file() {  # $1: api or worker
    case $1 in
        api) description="faafo API: REST API, image downloads and the gallery"
             exe=faafo-api; stop=30; caps="AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE" ;;
        worker) description="faafo worker: renders fractals from the queue"
             exe=faafo-worker; stop=$STOP_TIMEOUT; caps="CapabilityBoundingSet=" ;;
    esac
    cat <<EOF
# faafo-$1.service: written by faafo's deploy/install.sh
[Unit]
Description=$description
Wants=network-online.target
After=network-online.target
# Give up after 10 failed starts a minute (a crash loop, not a hiccup).
StartLimitIntervalSec=60
StartLimitBurst=10

[Service]
Type=exec
User=faafo
Group=faafo
ExecStart=$BIN_DIR/$exe --config-file $CONFIG_FILE
# Restart after a crash, not after a clean stop.
Restart=on-failure
RestartSec=2
# SIGTERM to the main process: the API drains its requests, a worker finishes or
# gives back the tasks in hand; whatever is left after the timeout is killed.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=$stop
$caps
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ProtectHome=yes
StateDirectory=faafo

[Install]
WantedBy=multi-user.target
EOF
}

haproxy_config() {  # $1: comma-separated host:port of the API servers
    cat <<'EOF'
# HAProxy in front of the faafo API tier: written by faafo's deploy/install.sh
global
    log stdout format raw local0 info
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option forwardfor
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-request 30s
    # A refused or dropped connection is retried up to 3 times, each retry on
    # another server: clients see no error while an API host goes away.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend faafo
    bind :80
    default_backend faafo-api

# Which API servers are up, for operators on this host only (CSV: /stats;csv).
frontend stats
    bind 127.0.0.1:8404
    stats enable
    stats uri /stats

backend faafo-api
    balance roundrobin
    # Ready means database and queue reachable; a server failing twice is out
    # within about two seconds, and back after two good checks.
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
EOF
    n=0
    old_ifs=$IFS
    IFS=,
    for backend in $1; do
        n=$((n + 1))
        printf '    server api-%d %s check\n' "$n" "$backend"
    done
    IFS=$old_ifs
}

case $PRINT in
    "") ;;
    unit-api) unit_file api; exit 0 ;;
    unit-worker) unit_file worker; exit 0 ;;
    haproxy)  # without -b: HAProxy takes the two API addresses from its environment
        # shellcheck disable=SC2016 # written literally, expanded by HAProxy
        from_env='"${FAAFO_API_1}","${FAAFO_API_2}"'
        haproxy_config "${BACKENDS:-$from_env}"; exit 0 ;;
    *) die "-P unit-api, unit-worker or haproxy" ;;
esac

[ -n "$INSTALL$RUN" ] || usage

# ---------------------------------------------------------------- helpers

# Parse a URL with Python (cloud images always have python3, and its parser
# knows the corner cases): prints scheme, user, password, host, port, path.
url_parts() {
    python3 - "$1" <<'EOF'
import sys
from urllib.parse import unquote, urlsplit
u = urlsplit(sys.argv[1])
path = unquote(u.path[1:]) if u.path.startswith("/") else unquote(u.path)
print(u.scheme.split("+")[0], unquote(u.username or ""), unquote(u.password or ""),
      u.hostname or "", u.port or "", path or "-", sep="\n")
EOF
}

apt_install() {
    missing=""
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || missing="$missing $package"
    done
    [ -n "$missing" ] || return 0
    [ "${FAAFO_NO_APT:-}" != 1 ] || die "needed but not installed (FAAFO_NO_APT=1):$missing"
    log "installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y -qq $missing >/dev/null
}

is_alive() {  # $1: pid file
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# A small supervisor for hosts without systemd (containers, network namespaces):
# restarts the command when it fails, forwards SIGTERM and waits STOP_TIMEOUT
# seconds before SIGKILL. Its pid is in RUN_DIR/NAME.pid, the service's in
# RUN_DIR/NAME.child.pid, the output in LOG_DIR/NAME.log.
supervise() {  # NAME COMMAND...
    name=$1; shift
    pidfile="$RUN_DIR/$name.pid"
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    stop_supervised "$name"
    # shellcheck disable=SC2016 # expanded by the supervisor's own shell
    setsid sh -c '
        name=$1 pidfile=$2 childfile=$3 timeout=$4; shift 4
        echo $$ > "$pidfile"
        stopping=0 child=""
        stop() {
            stopping=1
            [ -n "$child" ] || exit 0
            kill -TERM "$child" 2>/dev/null
            waited=0
            while kill -0 "$child" 2>/dev/null && [ "$waited" -lt "$timeout" ]; do
                sleep 1; waited=$((waited + 1))
            done
            kill -KILL "$child" 2>/dev/null
            rm -f "$pidfile" "$childfile"
            exit 0
        }
        trap stop TERM INT
        while :; do
            "$@" &
            child=$!
            echo "$child" > "$childfile"
            wait "$child"; status=$?
            [ "$stopping" = 1 ] && break
            [ "$status" = 0 ] && break
            echo "supervisor: $name exited with status $status, restarting in 2 s"
            sleep 2
        done
        rm -f "$pidfile" "$childfile"
    ' "faafo-supervise-$name" "$name" "$pidfile" "$RUN_DIR/$name.child.pid" "$STOP_TIMEOUT" "$@" \
        >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        [ -s "$pidfile" ] && break
        sleep 0.2
    done
    log "$name started under the supervisor (pid $(cat "$pidfile" 2>/dev/null || echo ?))"
}

stop_supervised() {  # NAME: graceful stop of a supervised service, if it runs
    pidfile="$RUN_DIR/$1.pid"
    is_alive "$pidfile" || return 0
    pid=$(cat "$pidfile")
    log "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((STOP_TIMEOUT + 5)) ]; do
        sleep 1; waited=$((waited + 1))
    done
}

wait_for() {  # SECONDS WHAT COMMAND...
    seconds=$1 what=$2; shift 2
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt $((seconds * 2)) ] || die "$what not ready after ${seconds}s"
        sleep 0.5
    done
}

sql_quote() { printf "%s" "$1" | sed "s/'/''/g"; }

ensure_user() {  # the system user the services run as under systemd
    getent group faafo >/dev/null || groupadd --system faafo
    getent passwd faafo >/dev/null \
        || useradd --system --gid faafo --home-dir /var/lib/faafo --shell /usr/sbin/nologin faafo
}

# ---------------------------------------------------------------- components

install_faafo() {
    if [ -n "${FAAFO_PYTHON:-}" ]; then
        "$FAAFO_PYTHON" -c "import faafo" || die "FAAFO_PYTHON=$FAAFO_PYTHON cannot import faafo"
        log "faafo already installed for $FAAFO_PYTHON"
        return
    fi
    [ -n "$PIP_SOURCE" ] || die "-i faafo: say what pip installs with -s (a wheel, a git URL, a directory...)"
    if [ ! -x "$VENV/bin/python" ]; then
        command -v python3 >/dev/null || apt_install python3
        python3 -c "import ensurepip, venv" 2>/dev/null || apt_install python3-venv
        log "creating the virtualenv $VENV"
        python3 -m venv "$VENV"
    fi
    log "installing faafo from $PIP_SOURCE"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade "$PIP_SOURCE"
}

install_messaging() {
    [ -n "$TRANSPORT_URL" ] || die "-i messaging needs -m amqp://USER:PASSWORD@HOST:5672/VHOST"
    parts=$(url_parts "$TRANSPORT_URL")
    user=$(echo "$parts" | sed -n 2p); password=$(echo "$parts" | sed -n 3p)
    vhost=$(echo "$parts" | sed -n 6p); [ "$vhost" != "-" ] || vhost=/
    if [ -z "$user" ] || [ -z "$password" ]; then die "-m must name a user and a password"; fi
    [ "$user" != guest ] || die "-m: give faafo its own RabbitMQ user, not guest"
    case "$password" in -*) die "-m: the password must not start with '-' (rabbitmqctl reads it as an option)" ;; esac
    apt_install rabbitmq-server
    if [ "$SUPERVISOR" = systemd ]; then
        systemctl enable --now rabbitmq-server >/dev/null
        ctl() { rabbitmqctl "$@"; }
    else
        # A node of our own: its own name, files and configuration, listening on
        # every address of this host (the firewall decides who gets in).
        base="$STATE_DIR/rabbitmq"
        mkdir -p "$base" "$LOG_DIR"
        printf 'listeners.tcp.default = 5672\nloopback_users.guest = true\n' > "$base/rabbitmq.conf"
        touch "$base/enabled_plugins"
        chown -R rabbitmq:rabbitmq "$base"
        export RABBITMQ_NODENAME="${RABBITMQ_NODENAME:-faafo@localhost}"
        export RABBITMQ_MNESIA_BASE="$base/mnesia" RABBITMQ_LOG_BASE="$base/log"
        export RABBITMQ_CONFIG_FILE="$base/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins"
        export RABBITMQ_PID_FILE="$base/rabbitmq.pid" RABBITMQ_NODE_IP_ADDRESS=""
        ctl() { rabbitmqctl -n "$RABBITMQ_NODENAME" "$@"; }
        if ! ctl status >/dev/null 2>&1; then
            supervise rabbitmq rabbitmq-server
        fi
    fi
    wait_for 120 RabbitMQ ctl await_startup
    if ctl list_users -q | cut -f1 | grep -qx "$user"; then
        ctl change_password "$user" "$password" >/dev/null
    else
        ctl add_user "$user" "$password" >/dev/null
    fi
    ctl list_vhosts -q | grep -qx "$vhost" || ctl add_vhost "$vhost" >/dev/null
    ctl set_permissions -p "$vhost" "$user" ".*" ".*" ".*" >/dev/null
    if ctl list_users -q | cut -f1 | grep -qx guest; then
        ctl delete_user guest >/dev/null
    fi
    log "RabbitMQ ready: user $user, vhost $vhost (guest removed)"
}

install_database() {
    [ -n "$DATABASE_URL" ] || die "-i database needs -d postgresql+psycopg://USER:PASSWORD@HOST/DB (or mysql+pymysql://...)"
    parts=$(url_parts "$DATABASE_URL")
    scheme=$(echo "$parts" | sed -n 1p)
    user=$(echo "$parts" | sed -n 2p); password=$(echo "$parts" | sed -n 3p)
    database=$(echo "$parts" | sed -n 6p)
    if [ -z "$user" ] || [ -z "$password" ] || [ "$database" = "-" ]; then
        die "-d must name a user, a password and a database"
    fi
    case $scheme in
        postgresql) install_postgresql "$user" "$password" "$database" ;;
        mysql|mariadb) install_mariadb "$user" "$password" "$database" ;;
        *) die "-d: a postgresql+psycopg:// or mysql+pymysql:// URL" ;;
    esac
}

install_postgresql() {  # USER PASSWORD DATABASE
    apt_install postgresql
    if [ "$SUPERVISOR" = systemd ]; then
        version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -1)
        conf="/etc/postgresql/$version/main"
        mkdir -p "$conf/conf.d"
        echo "listen_addresses = '*'" > "$conf/conf.d/faafo.conf"
        grep -q "faafo: remote" "$conf/pg_hba.conf" || printf '%s\n' \
            "host all all 0.0.0.0/0 scram-sha-256 # faafo: remote API hosts" \
            "host all all ::/0 scram-sha-256 # faafo: remote API hosts" >> "$conf/pg_hba.conf"
        systemctl enable postgresql >/dev/null
        systemctl restart postgresql
        psql_as() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }
    else
        # A cluster of our own under STATE_DIR, run by the postgres user.
        bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin | sort -V | tail -1)
        [ -n "$bin" ] || die "PostgreSQL's programs not found under /usr/lib/postgresql"
        data="$STATE_DIR/postgresql/data" sockets="$STATE_DIR/postgresql/run"
        mkdir -p "$data" "$sockets"
        chown -R postgres:postgres "$STATE_DIR/postgresql"
        chmod 700 "$data"
        if [ ! -f "$data/PG_VERSION" ]; then
            runuser -u postgres -- "$bin/initdb" -D "$data" --auth-local=peer \
                --auth-host=scram-sha-256 -E UTF8 >/dev/null
            printf '%s\n' "listen_addresses = '*'" "port = 5432" \
                "unix_socket_directories = '$sockets'" >> "$data/postgresql.conf"
            printf '%s\n' "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
        fi
        if ! is_alive "$RUN_DIR/postgresql.pid"; then
            supervise postgresql runuser -u postgres -- "$bin/postgres" -D "$data"
        fi
        psql_as() { runuser -u postgres -- psql -h "$sockets" -X -q -v ON_ERROR_STOP=1 "$@"; }
        wait_for 60 PostgreSQL psql_as -c "select 1"
    fi
    wait_for 60 PostgreSQL psql_as -c "select 1"
    q_user=$(printf '%s' "$1" | sed 's/"/""/g'); q_password=$(sql_quote "$2")
    q_database=$(printf '%s' "$3" | sed 's/"/""/g')
    if psql_as -tA -c "select 1 from pg_roles where rolname = '$(sql_quote "$1")'" | grep -q 1; then
        psql_as -c "ALTER ROLE \"$q_user\" LOGIN PASSWORD '$q_password'"
    else
        psql_as -c "CREATE ROLE \"$q_user\" LOGIN PASSWORD '$q_password'"
    fi
    if ! psql_as -tA -c "select 1 from pg_database where datname = '$(sql_quote "$3")'" | grep -q 1; then
        psql_as -c "CREATE DATABASE \"$q_database\" OWNER \"$q_user\""
    fi
    log "PostgreSQL ready: database $3, user $1"
}

install_mariadb() {  # USER PASSWORD DATABASE
    apt_install mariadb-server
    if [ "$SUPERVISOR" = systemd ]; then
        printf '[mysqld]\nbind-address = 0.0.0.0\n' > /etc/mysql/mariadb.conf.d/99-faafo.cnf
        systemctl enable mariadb >/dev/null
        systemctl restart mariadb
        sql() { mariadb --protocol=socket -uroot -e "$1"; }
    else
        data="$STATE_DIR/mysql/data" sockets="$STATE_DIR/mysql/run"
        mkdir -p "$data" "$sockets"
        chown -R mysql:mysql "$STATE_DIR/mysql"
        if [ ! -d "$data/mysql" ]; then
            mariadb-install-db --user=mysql --datadir="$data" --auth-root-authentication-method=socket \
                --skip-test-db >/dev/null
        fi
        if ! is_alive "$RUN_DIR/mariadb.pid"; then
            supervise mariadb mariadbd --no-defaults --user=mysql --datadir="$data" \
                --socket="$sockets/mysqld.sock" --pid-file="$sockets/mysqld.pid" \
                --bind-address=0.0.0.0 --port=3306
        fi
        sql() { mariadb --no-defaults --socket="$sockets/mysqld.sock" -uroot -e "$1"; }
    fi
    wait_for 60 MariaDB sql "select 1"
    q_user=$(sql_quote "$1"); q_password=$(sql_quote "$2")
    # shellcheck disable=SC2016 # a literal backquote, doubled for MariaDB
    q_database=$(printf '%s' "$3" | sed 's/`/``/g')
    sql "CREATE DATABASE IF NOT EXISTS \`$q_database\` CHARACTER SET utf8mb4;
         CREATE USER IF NOT EXISTS '$q_user'@'%' IDENTIFIED BY '$q_password';
         ALTER USER '$q_user'@'%' IDENTIFIED BY '$q_password';
         GRANT ALL PRIVILEGES ON \`$q_database\`.* TO '$q_user'@'%';"
    log "MariaDB ready: database $3, user $1"
}

install_loadbalancer() {
    [ -n "$BACKENDS" ] || die "-i loadbalancer needs -b HOST:PORT,HOST:PORT (the API servers)"
    apt_install haproxy
    if [ "$SUPERVISOR" = systemd ]; then
        haproxy_config "$BACKENDS" > /etc/haproxy/haproxy.cfg.new
        haproxy -c -q -f /etc/haproxy/haproxy.cfg.new
        mv /etc/haproxy/haproxy.cfg.new /etc/haproxy/haproxy.cfg
        systemctl enable haproxy >/dev/null
        systemctl reload-or-restart haproxy
    else
        mkdir -p "$ETC_DIR"
        haproxy_config "$BACKENDS" > "$ETC_DIR/haproxy.cfg"
        haproxy -c -q -f "$ETC_DIR/haproxy.cfg"
        supervise haproxy haproxy -W -db -f "$ETC_DIR/haproxy.cfg"
    fi
    log "HAProxy in front of $BACKENDS"
}

# ---------------------------------------------------------------- faafo configuration

# One "key = value" line, unless -o gave this option for this section (an INI
# section must not name an option twice).
opt() {  # SECTION KEY VALUE
    [ -n "$3" ] || return 0
    case "$EXTRA
" in *"
$1.$2="*) return 0 ;; esac
    echo "$2 = $3"
}

extra_of() {  # SECTION: the -o options of that section
    echo "$EXTRA" | sed -n "s/^$1\.\([^=]*\)=\(.*\)/\1 = \2/p"
}

write_config() {
    mkdir -p "$ETC_DIR" "$STATE_DIR/data"
    umask 077
    {
        echo "# written by faafo's deploy/install.sh; flags and FAAFO_* variables override it"
        echo "[DEFAULT]"
        opt DEFAULT data_dir "$STATE_DIR/data"
        opt DEFAULT transport_url "$TRANSPORT_URL"
        extra_of DEFAULT
        if has "$RUN" api; then
            echo "[api]"
            # Only API hosts hold the database's password.
            opt api database_url "$DATABASE_URL"
            opt api bind_port 80
            opt api client_token "$CLIENT_TOKEN"
            opt api worker_token "$WORKER_TOKEN"
            extra_of api
        fi
        if has "$RUN" worker; then
            echo "[worker]"
            opt worker endpoint_url "$ENDPOINT_URL"
            opt worker worker_token "$WORKER_TOKEN"
            opt worker name "$NAME"
            extra_of worker
        fi
    } > "$CONFIG_FILE.new"
    umask 022
    mv "$CONFIG_FILE.new" "$CONFIG_FILE"
    if [ "$SUPERVISOR" = systemd ]; then
        chgrp faafo "$CONFIG_FILE" && chmod 640 "$CONFIG_FILE"
        chown faafo:faafo "$STATE_DIR" "$STATE_DIR/data"
    fi
    log "configuration written to $CONFIG_FILE"
}

run_service() {  # api or worker
    exe="$BIN_DIR/faafo-$1"
    [ -x "$exe" ] || die "$exe not found: install faafo first (-i faafo)"
    if [ "$SUPERVISOR" = systemd ]; then
        unit_file "$1" > "/etc/systemd/system/faafo-$1.service"
        systemctl daemon-reload
        systemctl enable "faafo-$1" >/dev/null
        systemctl restart "faafo-$1"
        log "faafo-$1 started by systemd"
    else
        supervise "faafo-$1" "$exe" --config-file "$CONFIG_FILE"
    fi
}

run_demo() {
    [ -n "$ENDPOINT_URL" ] || die "-r demo needs -e ENDPOINT_URL"
    first=${ENDPOINT_URL%%,*}
    wait_for 120 "the API at $first" python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/readyz', timeout=2)" "$first"
    FAAFO_CLIENT_TOKEN="$CLIENT_TOKEN" "$BIN_DIR/faafo" --endpoint-url "$first" create --tasks 5 \
        --width 256 --height 256 --iterations 256
}

# ---------------------------------------------------------------- main

has "$INSTALL" messaging && install_messaging
has "$INSTALL" database && install_database
has "$INSTALL" faafo && install_faafo
has "$INSTALL" loadbalancer && install_loadbalancer
if has "$RUN" api || has "$RUN" worker; then
    [ "$SUPERVISOR" != systemd ] || ensure_user
    write_config
fi
if has "$RUN" api; then
    [ -n "$DATABASE_URL" ] || log "warning: no -d: the API uses SQLite in $STATE_DIR/data"
    [ -n "$TRANSPORT_URL" ] || log "warning: no -m: the API uses the embedded queue (one host only)"
    run_service api
fi
if has "$RUN" worker; then
    [ -n "$ENDPOINT_URL" ] || die "-r worker needs -e ENDPOINT_URL (a load balancer or a list of APIs)"
    [ -n "$TRANSPORT_URL" ] || die "-r worker needs -m TRANSPORT_URL"
    run_service worker
fi
has "$RUN" demo && run_demo
log "done"
