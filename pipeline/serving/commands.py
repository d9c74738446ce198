"""``camcount serve``: the Open Inference Protocol v2 REST endpoint (see ``pipeline.serving``).

Loads every model version the ``serving`` section names (default: the whole registry),
then prints ``camcount serve: listening on URL`` once the socket is bound, and serves
until SIGINT or SIGTERM, finishing the requests in flight. For example::

    serving:
      host: 0.0.0.0
      tls_cert_file: /etc/camcount/tls/cert.pem
      tls_key_file: /etc/camcount/tls/key.pem
      api_keys:
        - {id: integrator-a, sha256: <sha256 hex of the key>, rate_limit_per_s: 20}

and, with the official client (``pip install tritonclient[http]``)::

    client = tritonclient.http.InferenceServerClient("host:8000", ssl=True)
    image = tritonclient.http.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(numpy.array([jpeg_bytes], dtype=object))
    result = client.infer("yolox-nano", [image], headers={"Authorization": "Bearer KEY"})
    result.as_numpy("boxes"), result.as_numpy("class_names")
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from pipeline.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="serve the models over HTTP (Open Inference Protocol v2)")
    # Also accepted after the sub-command; SUPPRESS keeps a top-level -c/--config when absent.
    serve.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS,
                       help="YAML config file (same as the top-level option)")
    serve.add_argument("--host", help="listen address (default: serving.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port, 0 for any free one (default: serving.port, 8000)")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.serving.server import build_server, serve

    resolver = None
    if settings.serving.follow_assignment:
        from pipeline.serving.assignment import AssignmentResolver

        resolver = AssignmentResolver(settings).start()
    try:
        server = build_server(settings, host=args.host, port=args.port, resolver=resolver)
        asyncio.run(serve(server, lambda url: print(f"camcount serve: listening on {url}", flush=True)))
    finally:
        if resolver is not None:
            resolver.stop()
    return 0
