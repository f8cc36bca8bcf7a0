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
#              [-o SECTION.OPTION=VALUE]... [-f ROLE]... [-a GROUP=SOURCES]...
#   install.sh -P unit-api|unit-worker|haproxy|firewall-ROLE|firewall-ipv6   print a file
#   install.sh -P firewall -f ROLE... -a GROUP=SOURCES...   print the rules -f would apply
#
#   -i faafo         install the faafo package (pip, into $FAAFO_VENV)
#   -i messaging     RabbitMQ, with the user, password and vhost of -m (guest is deleted)
#   -i database      PostgreSQL or MariaDB (from the scheme of -d), with the database,
#                    user and password of -d, reachable from other hosts
#   -i loadbalancer  HAProxy in front of the API servers of -b (host:port,host:port)
#   -r api           run faafo-api (port 80 unless -o api.bind_port=N)
#   -r worker        run faafo-worker, delivering to -e (a comma-separated list fails over),
#                    metrics on port 9100 (-o worker.metrics_port=N; 0: none)
#   -r demo          create a few fractals once through -e
#   -f ROLE          firewall this host (iptables-restore; the whole filter table is
#                    replaced): services, api, loadbalancer or worker, repeatable.
#                    Inbound is dropped except loopback, replies, ping, SSH and what
#                    the role serves, each port only to the groups of -a
#   -a GROUP=SOURCES who belongs to a group, as IPv4 addresses or CIDR blocks separated
#                    by commas: api, worker, loadbalancer, prometheus, admin (SSH,
#                    default anywhere), clients (the balancer's port 80, default anywhere).
#                    A port whose group is not given stays closed
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
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '8,32p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//' >&2 || true
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
# Ports a role listens on unless -o says otherwise: the config it writes and the
# firewall it builds read them here, so the two cannot disagree.
API_PORT_DEFAULT=80
WORKER_METRICS_PORT_DEFAULT=9100
PRINT=""
SCRIPT_DIR=$(cd "$(dirname "$0")" 2>/dev/null && pwd || echo /)
if [ -f "$SCRIPT_DIR/../pyproject.toml" ]; then
    DEFAULT_SOURCE=$(cd "$SCRIPT_DIR/.." && pwd)
else
    DEFAULT_SOURCE=""
fi
PIP_SOURCE="${FAAFO_PIP_SOURCE:-$DEFAULT_SOURCE}"

FIREWALL=""
GROUPS_GIVEN=""
# Sources of each group of -a (read through eval by allow()): SSH and the balancer's
# port are open to anywhere unless -a says otherwise, the rest is closed.
# shellcheck disable=SC2034
GROUP_api="" GROUP_worker="" GROUP_loadbalancer="" GROUP_prometheus=""
# shellcheck disable=SC2034
GROUP_admin="0.0.0.0/0" GROUP_clients="0.0.0.0/0"

add_group() {  # GROUP=SOURCES: IPv4 addresses and CIDR blocks only (they go into rules)
    group=${1%%=*} sources=${1#*=}
    case $1 in *=*) ;; *) die "-a wants GROUP=SOURCES, for example -a api=10.0.0.6,10.0.0.8" ;; esac
    case $group in api|worker|loadbalancer|prometheus|admin|clients) ;;
        *) die "unknown group -a $group (api, worker, loadbalancer, prometheus, admin, clients)" ;; esac
    case $sources in
        ""|,*|*,|*,,*|*[!0-9./,]*) die "-a $group: IPv4 addresses or CIDR blocks separated by commas, not '$sources'" ;;
    esac
    if has "$GROUPS_GIVEN" "$group"; then
        eval "sources=\$GROUP_$group,\$sources"
    fi
    GROUPS_GIVEN="$GROUPS_GIVEN $group"
    eval "GROUP_$group=\$sources"
}

while getopts "i:r:e:m:d:b:t:w:n:s:o:P:f:a:h" opt; do
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
        f) case $OPTARG in services|api|loadbalancer|worker) ;;
               *) die "unknown firewall role -f $OPTARG (services, api, loadbalancer or worker)" ;; esac
           FIREWALL="$FIREWALL $OPTARG" ;;
        a) add_group "$OPTARG" ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage

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
    # another server: clients see no error while an API host goes away. A request
    # answered with nothing (the server died while on it) is retried only when
    # repeating it is harmless: see disable-l7-retry in the backend.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
    # Only a request HAProxy holds whole can be sent again: wait for the body (up
    # to one buffer) before picking a server. Slow senders then tie up HAProxy,
    # not an API process.
    option http-buffer-request

frontend faafo
    bind :80
    # Metrics are per API process: Prometheus scrapes each API host directly,
    # and through the balancer they would be a random instance's, so refuse them.
    http-request return status 404 content-type application/json string '{"code": 404, "message": "/metrics is served by each API host, not by the load balancer"}' if { path,url_dec -m reg ^/+metrics(/|$) }
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
    # A POST the server may have committed before dying is not replayed, unless
    # it carries an Idempotency-Key (the API answers a repeat with the first
    # answer). A connection that failed is still retried: nothing was sent.
    http-request disable-l7-retry if METH_POST !{ req.hdr(Idempotency-Key) -m found }
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

# The firewall: one iptables-restore table per host, default deny inbound. deploy/firewall/
# holds each role's table with sources and ports left as ${NAME} placeholders
# (-P firewall-ROLE); -f fills them in from -a and -o, leaving out the lines of a
# group that was not given.

TEMPLATE=0

extra_value() {  # SECTION.KEY DEFAULT: the value given with -o, else DEFAULT
    found=$(echo "$EXTRA" | sed -n "s/^$1=//p" | tail -1)
    echo "${found:-$2}"
}

port_of() {  # PLACEHOLDER VALUE: the placeholder in a template, else the value
    if [ "$TEMPLATE" = 1 ]; then echo "\${$1}"; else echo "$2"; fi
}

allow() {  # PORT GROUP WHAT: accept TCP to PORT from the group's sources
    port=$1 group=$2
    if [ "$TEMPLATE" = 1 ]; then
        case $group in
            clients) name=CLIENT ;;
            *) name=$(echo "$group" | tr '[:lower:]' '[:upper:]') ;;
        esac
        sources="\${${name}_HOSTS}"
    else
        case $port in ""|*[!0-9]*) die "firewall: port '$port' is not a number (see -o)" ;; esac
        eval "sources=\$GROUP_$group"
        if [ -z "$sources" ] || [ "$port" = 0 ]; then
            echo "# $3: closed (no -a $group=...)"
            return
        fi
    fi
    echo "# $3"
    echo "-A INPUT -p tcp -s $sources --dport $port -j ACCEPT"
}

firewall_role() {  # ROLE: the accept rules of one role
    case $1 in
        services)
            allow 5432 api "PostgreSQL: API hosts only"
            allow 3306 api "MariaDB: API hosts only"
            allow 5672 api "RabbitMQ (AMQP): API hosts..."
            allow 5672 worker "... and workers (epmd 4369 and Erlang's 25672 stay closed)"
            allow 9101 prometheus "faafo autoscale --metrics-port 9101, if it runs here: Prometheus" ;;
        api)
            api_port=$(port_of API_PORT "$(extra_value api.bind_port "$API_PORT_DEFAULT")")
            allow "$api_port" loadbalancer "faafo-api: the load balancer..."
            allow "$api_port" worker "... workers given a list of API addresses..."
            allow "$api_port" prometheus "... and Prometheus (GET /metrics)" ;;
        loadbalancer)
            allow 80 clients "HAProxy: clients (browsers, the faafo CLI) and workers" ;;
        worker)
            metrics_port=$(port_of WORKER_METRICS_PORT "$(extra_value worker.metrics_port "$WORKER_METRICS_PORT_DEFAULT")")
            allow "$metrics_port" prometheus "faafo-worker's metrics: Prometheus only" ;;
    esac
}

firewall_rules() {  # ROLE...: the whole IPv4 filter table of a host with these roles
    echo "# faafo firewall for the roles:$(printf ' %s' "$@"): written by faafo's deploy/install.sh"
    if [ "$TEMPLATE" = 1 ]; then
        echo "# Apply with install.sh -f ROLE -a GROUP=SOURCES..., or fill in the \${...}"
        echo "# yourself and load it with iptables-restore."
    fi
    cat <<'EOF'
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p icmp --icmp-type echo-request -j ACCEPT
EOF
    allow 22 admin "SSH: administrators"
    for role in "$@"; do
        firewall_role "$role"
    done
    echo "COMMIT"
}

firewall_ipv6() {  # faafo talks IPv4 only: over IPv6 a host lets in no more than SSH
    cat <<'EOF'
# faafo firewall, IPv6: written by faafo's deploy/install.sh
# faafo's services talk IPv4; over IPv6 only replies, ICMPv6 (neighbour
# discovery needs it) and SSH get in.
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
EOF
}

case $PRINT in
    "") ;;
    unit-api) unit_file api; exit 0 ;;
    unit-worker) unit_file worker; exit 0 ;;
    firewall-services|firewall-api|firewall-loadbalancer|firewall-worker)
        TEMPLATE=1; firewall_rules "${PRINT#firewall-}"; exit 0 ;;
    firewall-ipv6) firewall_ipv6; exit 0 ;;
    firewall)
        [ -n "$FIREWALL" ] || die "-P firewall: say which roles with -f ROLE"
        # shellcheck disable=SC2086 # one word per role
        firewall_rules $FIREWALL; exit 0 ;;
    haproxy)  # without -b: HAProxy takes the two API addresses from its environment
        # shellcheck disable=SC2016 # written literally, expanded by HAProxy
        from_env='"${FAAFO_API_1}","${FAAFO_API_2}"'
        haproxy_config "${BACKENDS:-$from_env}"; exit 0 ;;
    *) die "-P unit-api, unit-worker, haproxy, firewall-ROLE, firewall-ipv6 or firewall" ;;
esac

[ -n "$INSTALL$RUN$FIREWALL" ] || usage

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

# An API host cut off from the network in the middle of a transaction (a pulled
# cable, a partition) leaves its session open on the server, holding row locks
# that stall every other API's claim of those tasks. The server ends a session
# idle inside a transaction after 30 s (an API's transactions take milliseconds)
# and probes silent peers with TCP keepalives.
PG_SETTINGS="idle_in_transaction_session_timeout=30s tcp_keepalives_idle=30 tcp_keepalives_interval=10 tcp_keepalives_count=3"
MARIADB_IDLE_TRANSACTION_TIMEOUT=30

install_postgresql() {  # USER PASSWORD DATABASE
    apt_install postgresql
    if [ "$SUPERVISOR" = systemd ]; then
        version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -1)
        conf="/etc/postgresql/$version/main"
        mkdir -p "$conf/conf.d"
        {
            echo "listen_addresses = '*'"
            for setting in $PG_SETTINGS; do echo "${setting%%=*} = '${setting#*=}'"; done
        } > "$conf/conf.d/faafo.conf"
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
            options=""
            for setting in $PG_SETTINGS; do options="$options -c $setting"; done
            # shellcheck disable=SC2086 # one word per option
            supervise postgresql runuser -u postgres -- "$bin/postgres" -D "$data" $options
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
        printf '[mysqld]\nbind-address = 0.0.0.0\nidle_transaction_timeout = %s\n' \
            "$MARIADB_IDLE_TRANSACTION_TIMEOUT" > /etc/mysql/mariadb.conf.d/99-faafo.cnf
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
                --bind-address=0.0.0.0 --port=3306 \
                --idle-transaction-timeout="$MARIADB_IDLE_TRANSACTION_TIMEOUT"
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
            opt api bind_port "$API_PORT_DEFAULT"
            opt api client_token "$CLIENT_TOKEN"
            opt api worker_token "$WORKER_TOKEN"
            extra_of api
        fi
        if has "$RUN" worker; then
            echo "[worker]"
            opt worker endpoint_url "$ENDPOINT_URL"
            opt worker worker_token "$WORKER_TOKEN"
            opt worker name "$NAME"
            # Prometheus scrapes every worker here (-o worker.metrics_port=0: off).
            opt worker metrics_port "$WORKER_METRICS_PORT_DEFAULT"
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

apply_firewall() {
    command -v iptables-restore >/dev/null || apt_install iptables
    mkdir -p "$ETC_DIR"
    # shellcheck disable=SC2086 # one word per role
    firewall_rules $FIREWALL > "$ETC_DIR/firewall.rules"
    firewall_ipv6 > "$ETC_DIR/firewall6.rules"
    iptables-restore --test < "$ETC_DIR/firewall.rules" || die "the firewall rules do not load"
    iptables-restore < "$ETC_DIR/firewall.rules"
    if command -v ip6tables-restore >/dev/null; then
        ip6tables-restore < "$ETC_DIR/firewall6.rules"
    fi
    # iptables-persistent loads these at boot; without it, run -f again after a reboot.
    if [ -z "$PREFIX" ] && [ -d /etc/iptables ]; then
        cp "$ETC_DIR/firewall.rules" /etc/iptables/rules.v4
        cp "$ETC_DIR/firewall6.rules" /etc/iptables/rules.v6
    fi
    log "firewall for$FIREWALL applied (rules in $ETC_DIR/firewall.rules)"
}

# ---------------------------------------------------------------- main

[ -z "$FIREWALL" ] || apply_firewall

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
