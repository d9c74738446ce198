#!/usr/bin/env bash
# Stop exactly the processes infra/up.sh started (by pid file and command line), nothing else.
set -euo pipefail
source "$(dirname "$0")/env.sh"

stop() {  # stop NAME PIDFILE PATTERN
  local name="$1" pidf="$2" pattern="$3" pid
  if ! alive "$pidf" "$pattern"; then rm -f "$pidf"; say "$name: not running"; return; fi
  pid="$(cat "$pidf")"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do alive "$pidf" "$pattern" || break; sleep 0.5; done
  if alive "$pidf" "$pattern"; then say "$name: still running after 30s, killing"; kill -KILL "$pid"; fi
  rm -f "$pidf"
  say "$name: stopped (pid $pid)"
}

services=" ${*:-kafka clickhouse} "  # `down.sh kafka` stops only Kafka
[[ "$services" != *" kafka "* ]] || stop Kafka "$STATE/run/kafka.pid" "$KAFKA_PATTERN"
[[ "$services" != *" clickhouse "* ]] || stop ClickHouse "$STATE/run/clickhouse.pid" "$CH_PATTERN"
