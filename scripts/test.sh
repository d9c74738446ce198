#!/usr/bin/env bash
# Start the real services the tests talk to, run the whole suite, stop what this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/env.sh

already_up=false
alive "$STATE/run/kafka.pid" "$KAFKA_PATTERN" && alive "$STATE/run/clickhouse.pid" "$CH_PATTERN" && already_up=true
bash infra/up.sh
$already_up || trap 'bash infra/down.sh' EXIT
# The RTSP ingest tests serve a clip with GStreamer's RTSP server (Debian packages).
bash infra/rtsp/install.sh

.venv/bin/python -m pytest "$@"
