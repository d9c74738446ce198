#!/usr/bin/env bash
# Install what the RTSP integration tests need: GStreamer's RTSP server library and its
# Python (GObject introspection) bindings, from Debian's packages. The test starts
# tests/integration/rtsp_server.py with the system python (/usr/bin/python3), which
# serves a sample clip at rtsp://127.0.0.1:PORT/NAME.
#
# Idempotent and fast when already installed: it only checks that the bindings load.
set -euo pipefail

PYTHON="${CAMCOUNT_RTSP_PYTHON:-/usr/bin/python3}"
PACKAGES=(
  python3-gi                    # GObject introspection for the system python
  gir1.2-gst-rtsp-server-1.0    # GstRtspServer (pulls gstreamer core + its gir files)
  gstreamer1.0-plugins-base     # typefind, app elements
  gstreamer1.0-plugins-good     # qtdemux (MP4) and rtph264pay
)

say() { printf '[rtsp] %s\n' "$*" >&2; }
die() { printf '[rtsp] ERROR: %s\n' "$*" >&2; exit 1; }

ready() {
  "$PYTHON" - <<'PY' 2>/dev/null
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer  # noqa: F401
Gst.init(None)
missing = [e for e in ("qtdemux", "rtph264pay") if Gst.ElementFactory.find(e) is None]
raise SystemExit(1 if missing else 0)
PY
}

if [ -x "$PYTHON" ] && ready; then
  say "GStreamer RTSP server: already installed"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get is missing; install ${PACKAGES[*]} (or their equivalents) by hand"
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
log="$(mktemp -t camcount-rtsp-apt.XXXXXX.log)"
say "installing ${PACKAGES[*]} (log: $log)"
{ $sudo apt-get update -q \
  && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; } \
  >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "apt-get install failed (log: $log)"; }
ready || die "installed, but $PYTHON still cannot load GstRtspServer with qtdemux and rtph264pay"
say "GStreamer RTSP server: installed"
