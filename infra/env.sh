# Shared settings for infra/*.sh: where state lives and which loopback ports are used.
# Override any of these in the environment.
INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$INFRA_DIR/.." && pwd)"
STATE="${CAMCOUNT_STATE_DIR:-$REPO_DIR/.camcount}"
HOST="${CAMCOUNT_INFRA_HOST:-127.0.0.1}"
KAFKA_PORT="${CAMCOUNT_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${CAMCOUNT_KAFKA_CONTROLLER_PORT:-9093}"
CH_TCP_PORT="${CAMCOUNT_CLICKHOUSE_TCP_PORT:-9000}"
CH_HTTP_PORT="${CAMCOUNT_CLICKHOUSE_HTTP_PORT:-8123}"
CH_PASSWORD="${CAMCOUNT_CLICKHOUSE_PASSWORD:-}"
KAFKA_HEAP="${CAMCOUNT_KAFKA_HEAP:--Xmx768m -Xms256m}"
START_TIMEOUT_S="${CAMCOUNT_START_TIMEOUT_S:-90}"
# Optional SASL_SSL listener (off unless the port is set): a PEM file holding the broker's
# private key (PKCS#8, unencrypted) and certificate chain, a users file of `name:password`
# lines, and the SASL mechanism clients use (SCRAM users are created when the log folder is
# formatted, i.e. on the first start of a state folder).
SASL_SSL_PORT="${CAMCOUNT_KAFKA_SASL_SSL_PORT:-}"
SASL_SSL_KEYSTORE="${CAMCOUNT_KAFKA_SSL_KEYSTORE_PEM:-}"
SASL_SSL_USERS_FILE="${CAMCOUNT_KAFKA_SASL_USERS_FILE:-}"
SASL_SSL_MECHANISM="${CAMCOUNT_KAFKA_SASL_SSL_MECHANISM:-SCRAM-SHA-256}"

say() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

# render TEMPLATE OUT: replace @NAME@ placeholders with the settings above.
render() {
  sed -e "s#@STATE@#$STATE#g" -e "s#@HOST@#$HOST#g" \
      -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" \
      -e "s#@CH_TCP_PORT@#$CH_TCP_PORT#g" -e "s#@CH_HTTP_PORT@#$CH_HTTP_PORT#g" \
      -e "s#@CH_PASSWORD@#$CH_PASSWORD#g" \
      -e "s#@EXTRA_LISTENERS@#${SASL_SSL_PORT:+,SASL_SSL://$HOST:$SASL_SSL_PORT}#g" \
      -e "s#@EXTRA_PROTOCOLS@#${SASL_SSL_PORT:+,SASL_SSL:SASL_SSL}#g" \
      -e "s#@SASL_SSL_PORT@#$SASL_SSL_PORT#g" -e "s#@SASL_SSL_KEYSTORE@#$SASL_SSL_KEYSTORE#g" \
      -e "s#@SASL_SSL_MECHANISM@#$SASL_SSL_MECHANISM#g" "$1" > "$2"
}

# alive PIDFILE PATTERN: true when the pid in PIDFILE runs a command line matching PATTERN,
# so a recycled pid never makes us think (or kill) the wrong process.
alive() {
  local pid
  [ -f "$1" ] || return 1
  pid="$(cat "$1")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -- "$2" >/dev/null  # not -q: an early exit would SIGPIPE tr (pipefail)
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

KAFKA_PATTERN="kafka.Kafka $STATE/kafka/server.properties"
CH_PATTERN="clickhouse-server --config-file=$STATE/clickhouse/config.xml"
