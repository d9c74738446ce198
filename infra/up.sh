#!/usr/bin/env bash
# Start camcount's local Kafka (KRaft, jars from Maven Central) and ClickHouse (Debian package).
# Idempotent: a service already running from this state folder is left alone.
# Usage: up.sh [kafka] [clickhouse]  (default: both)
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$STATE/logs" "$STATE/run"

wait_for() {  # wait_for NAME LOG CHECK...: poll CHECK until it passes or the timeout names NAME.
  local name="$1" log="$2"; shift 2
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "last lines of $log:"; tail -n 20 "$log" >&2 || true
      die "$name did not come up within ${START_TIMEOUT_S}s (log: $log)"
    fi
    sleep 0.5
  done
}

kafka_libs() {
  local libs="$STATE/kafka/libs" stamp
  stamp="$(sha256sum "$INFRA_DIR/kafka/pom.xml" | cut -c1-16)"
  if [ "$(cat "$libs/.stamp" 2>/dev/null)" != "$stamp" ]; then
    command -v mvn >/dev/null || die "Kafka: Maven (mvn) is needed to fetch the broker jars"
    say "Kafka: resolving broker jars from Maven Central (cached in ~/.m2)"
    rm -rf "$libs"
    mvn -q -B -f "$INFRA_DIR/kafka/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$libs" -DincludeScope=runtime >"$STATE/logs/maven.log" 2>&1 \
      || { tail -n 20 "$STATE/logs/maven.log" >&2; die "Kafka: mvn could not resolve the broker jars (log: $STATE/logs/maven.log)"; }
    echo "$stamp" > "$libs/.stamp"
  fi
}

# sasl_users: the `name:password` lines of the users file, checked so they are safe to put in
# a JAAS line or a --add-scram argument (no quotes, commas, brackets, spaces or backslashes).
sasl_users() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    [[ "$line" =~ ^[A-Za-z0-9._-]+:[A-Za-z0-9._~!@%^*()+/:?-]+$ ]] \
      || die "Kafka: $SASL_SSL_USERS_FILE: each line must be name:password (letters, digits, ._~!@%^*()+/:?-)"
    printf '%s\n' "$line"
  done < "$SASL_SSL_USERS_FILE"
}

# sasl_ssl_config OUT: append the SASL_SSL listener's settings (and, for PLAIN, its users) to OUT.
sasl_ssl_config() {
  local out="$1" mech_lc user pass jaas=""
  case "$SASL_SSL_MECHANISM" in PLAIN|SCRAM-SHA-256|SCRAM-SHA-512) ;;
    *) die "Kafka: CAMCOUNT_KAFKA_SASL_SSL_MECHANISM must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" ;; esac
  [ -r "$SASL_SSL_KEYSTORE" ] || die "Kafka: SASL_SSL needs CAMCOUNT_KAFKA_SSL_KEYSTORE_PEM (key + certificate chain), not readable: '$SASL_SSL_KEYSTORE'"
  [ -r "$SASL_SSL_USERS_FILE" ] || die "Kafka: SASL_SSL needs CAMCOUNT_KAFKA_SASL_USERS_FILE (name:password lines), not readable: '$SASL_SSL_USERS_FILE'"
  sasl_users >/dev/null  # validates here, in this shell, so a bad line stops the start
  port_open "$SASL_SSL_PORT" && die "Kafka: port $SASL_SSL_PORT (SASL_SSL) is taken by another process"
  render "$INFRA_DIR/kafka/sasl_ssl.properties.in" "$out.sasl"
  cat "$out.sasl" >> "$out"; rm -f "$out.sasl"
  mech_lc="$(printf '%s' "$SASL_SSL_MECHANISM" | tr 'A-Z' 'a-z')"
  if [ "$SASL_SSL_MECHANISM" = PLAIN ]; then
    while IFS=: read -r user pass; do jaas+=" user_$user=\"$pass\""; done < <(sasl_users)
    echo "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$jaas;" >> "$out"
  else
    echo "listener.name.sasl_ssl.$mech_lc.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;" >> "$out"
  fi
}

# scram_args: --add-scram arguments for `StorageTool format`, one per user (SCRAM only).
scram_args() {
  local user pass
  [ -n "$SASL_SSL_PORT" ] && [ "$SASL_SSL_MECHANISM" != PLAIN ] || return 0
  while IFS=: read -r user pass; do
    printf '%s\n' "--add-scram" "$SASL_SSL_MECHANISM=[name=$user,password=$pass]"
  done < <(sasl_users)
}

start_kafka() {
  local pidf="$STATE/run/kafka.pid" log="$STATE/logs/kafka.log"
  if alive "$pidf" "$KAFKA_PATTERN"; then say "Kafka: already running (pid $(cat "$pidf"))"; return; fi
  command -v java >/dev/null || die "Kafka: java (17+) is needed"
  port_open "$KAFKA_PORT" && die "Kafka: port $KAFKA_PORT is taken by another process"
  kafka_libs
  mkdir -p "$STATE/kafka"
  # The properties may hold SASL passwords (PLAIN): readable by this user only.
  : > "$STATE/kafka/server.properties"; chmod 600 "$STATE/kafka/server.properties"
  render "$INFRA_DIR/kafka/server.properties.in" "$STATE/kafka/server.properties"
  [ -z "$SASL_SSL_PORT" ] || sasl_ssl_config "$STATE/kafka/server.properties"
  render "$INFRA_DIR/kafka/log4j2.properties.in" "$STATE/kafka/log4j2.properties"
  local cp="$STATE/kafka/libs/*" jvm=(-Dlog4j2.configurationFile="$STATE/kafka/log4j2.properties")
  local cluster_id scram=()
  if [ ! -f "$STATE/kafka/data/meta.properties" ]; then
    cluster_id="$(java -cp "$cp" "${jvm[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    mapfile -t scram < <(scram_args)
    java -cp "$cp" "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" "${scram[@]}" \
      -c "$STATE/kafka/server.properties" >"$STATE/logs/kafka-format.log" 2>&1 \
      || { cat "$STATE/logs/kafka-format.log" >&2; die "Kafka: formatting the KRaft log folder failed"; }
  elif [ -n "$SASL_SSL_PORT" ] && [ "$SASL_SSL_MECHANISM" != PLAIN ]; then
    say "Kafka: $STATE/kafka/data is already formatted; SCRAM users are only added on the first start (add more with kafka-configs --alter)"
  fi
  KAFKA_LOG_OFFSET="$(stat -c %s "$STATE/logs/kafka.log" 2>/dev/null || echo 0)"
  # shellcheck disable=SC2086
  nohup java $KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true "${jvm[@]}" -cp "$cp" \
    kafka.Kafka "$STATE/kafka/server.properties" >"$STATE/logs/kafka.out" 2>&1 &
  echo $! > "$pidf"
  say "Kafka: starting (pid $!)"
}

install_clickhouse() {
  command -v clickhouse-server >/dev/null && return
  command -v apt-get >/dev/null || die "ClickHouse: clickhouse-server is not installed and apt-get is missing; install ClickHouse or use docker-compose.yml"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  say "ClickHouse: installing Debian's clickhouse-server package"
  { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends clickhouse-server; } \
    >"$STATE/logs/apt.log" 2>&1 || { tail -n 20 "$STATE/logs/apt.log" >&2; die "ClickHouse: apt-get install clickhouse-server failed (log: $STATE/logs/apt.log)"; }
}

start_clickhouse() {
  local pidf="$STATE/run/clickhouse.pid"
  if alive "$pidf" "$CH_PATTERN"; then say "ClickHouse: already running (pid $(cat "$pidf"))"; return; fi
  port_open "$CH_TCP_PORT" && die "ClickHouse: port $CH_TCP_PORT is taken by another process"
  install_clickhouse
  mkdir -p "$STATE/clickhouse/data"
  render "$INFRA_DIR/clickhouse/config.xml.in" "$STATE/clickhouse/config.xml"
  render "$INFRA_DIR/clickhouse/users.xml.in" "$STATE/clickhouse/users.xml"
  cd "$STATE/clickhouse"
  nohup clickhouse-server --config-file="$STATE/clickhouse/config.xml" >"$STATE/logs/clickhouse.out" 2>&1 &
  echo $! > "$pidf"
  cd - >/dev/null
  say "ClickHouse: starting (pid $!)"
}

# starting PIDFILE: the process exists (not a zombie). Just after the fork its command line is
# still this shell's, not the server's, so `alive` says no: not ready yet, but not dead either.
starting() { [ -r "/proc/$(cat "$1")/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$(cat "$1")/status"; }
kafka_ready() { alive "$STATE/run/kafka.pid" "$KAFKA_PATTERN" || { starting "$STATE/run/kafka.pid" && return 1; } || die "Kafka: process exited (log: $STATE/logs/kafka.log, $STATE/logs/kafka.out)"; port_open "$KAFKA_PORT" && tail -c "+$((KAFKA_LOG_OFFSET + 1))" "$STATE/logs/kafka.log" 2>/dev/null | grep "Kafka Server started" >/dev/null; }
clickhouse_ready() { alive "$STATE/run/clickhouse.pid" "$CH_PATTERN" || { starting "$STATE/run/clickhouse.pid" && return 1; } || die "ClickHouse: process exited (log: $STATE/logs/clickhouse.err.log)"; [ "$(curl -fsS "http://$HOST:$CH_HTTP_PORT/ping" 2>/dev/null)" = "Ok." ]; }

KAFKA_LOG_OFFSET=0
services=" ${*:-kafka clickhouse} "  # `up.sh kafka` starts only Kafka
[[ "$services" != *" kafka "* ]] || start_kafka
[[ "$services" != *" clickhouse "* ]] || start_clickhouse
if [[ "$services" == *" kafka "* ]]; then
  wait_for Kafka "$STATE/logs/kafka.log" kafka_ready
  say "Kafka: ready at $HOST:$KAFKA_PORT (log: $STATE/logs/kafka.log)"
  [ -z "$SASL_SSL_PORT" ] || say "Kafka: SASL_SSL listener at $HOST:$SASL_SSL_PORT ($SASL_SSL_MECHANISM)"
fi
if [[ "$services" == *" clickhouse "* ]]; then
  wait_for ClickHouse "$STATE/logs/clickhouse.err.log" clickhouse_ready
  say "ClickHouse: ready at $HOST:$CH_TCP_PORT, http $CH_HTTP_PORT (log: $STATE/logs/clickhouse.log)"
fi
