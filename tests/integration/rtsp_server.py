"""A real RTSP server for the ingest tests: GStreamer's gst-rtsp-server serving one H.264 MP4.

Run with the system python, which has the GObject bindings (``bash infra/rtsp/install.sh``)::

    /usr/bin/python3 tests/integration/rtsp_server.py --port 8554 --path /cam CLIP.mp4

The clip's H.264 is sent as it is (no re-encode), paced in real time by the pipeline
clock. Each client that connects gets its own pipeline, so it starts from the first
frame. Prints ``READY rtsp://...`` on stdout once it listens; stops on SIGTERM/SIGINT.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", help="an MP4 file with an H.264 video track")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--path", default="/cam")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.clip.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! rtph264pay name=pay0 pt=96 config-interval=1 )'
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
