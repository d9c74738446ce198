"""``camcount serve`` throughput and latency next to bare onnxruntime, in one run.

Bare: ``session.run`` of the same model file and session settings on tensors
letterboxed in advance, at batch 1 and batch N (the ceiling). Served: a real
``camcount serve`` process on loopback, called by 1, 8 and 32 concurrent clients
(threads, one ``tritonclient[http]`` client each) sending pets09 frames as JPEG,
with batching on (``max_batch`` N) and off (``max_batch`` 1). The served figures
include JPEG decoding, letterboxing, NMS and HTTP; the clients share the
machine's cores with the server, as they would on one host.

    .venv/bin/python bench/bench_serving.py --batch 8 --requests 96
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tritonclient.http as triton
import yaml

from clips import read_jpegs
from pipeline.config import REPO_ROOT, parse_settings, shared_dir
from pipeline.inference.detector import load_detector
from pipeline.inference.registry import registry_from_settings

MODEL, VERSION = "yolox-nano", "1"


class Bare:
    """``session.run`` alone on tensors letterboxed in advance: the ceiling."""

    def __init__(self, config: dict, frames: list[np.ndarray]) -> None:
        settings = parse_settings(config, "<bench>")
        self.detector = load_detector(registry_from_settings(settings), MODEL, VERSION,
                                      settings.inference.session)
        self.frames = frames

    def fps(self, batch: int, repeats: int) -> float:
        """Frames/s, best of ``repeats`` passes after a warm-up (damps a shared host's noise)."""
        frames, detector = self.frames, self.detector
        tensors = [detector.preprocess(frames[i:i + batch]).tensor.copy() for i in range(0, len(frames), batch)]
        names, feed = [detector.spec.output.name], detector.spec.input.name
        best = 0.0
        for _ in range(repeats + 1):
            start = time.perf_counter()
            for tensor in tensors:
                detector.session.run(names, {feed: tensor})
            best = max(best, len(frames) / (time.perf_counter() - start))
        return best


class ServerProcess:
    """``camcount serve --port 0`` with a config file; the URL from its first stdout line."""

    def __init__(self, config: dict, workdir: Path) -> None:
        path = workdir / f"serve-{config['serving']['max_batch']}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log = (workdir / f"{path.stem}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "-c", str(path), "serve", "--port", "0"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout], daemon=True).start()
        match = re.search(r"listening on http://([\d.]+:\d+)", lines.get(timeout=120))
        if match is None:
            raise SystemExit(f"camcount serve did not start; see {self.log.name}")
        self.url = match.group(1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def run_clients(url: str, jpegs: list[bytes], clients: int, requests: int) -> tuple[float, np.ndarray]:
    """Requests/s and per-request latencies (s) of ``requests`` spread over ``clients`` threads."""
    per_client = max(1, requests // clients)
    barrier = threading.Barrier(clients + 1)

    def client(index: int) -> list[float]:
        latencies = []
        with triton.InferenceServerClient(url, network_timeout=300) as c:
            tensor = triton.InferInput("image", [1], "BYTES")
            c.is_server_ready()  # connect before the clock starts
            barrier.wait()
            for i in range(per_client):
                data = jpegs[(index * per_client + i) % len(jpegs)]
                tensor.set_data_from_numpy(np.array([data], dtype=object))
                start = time.perf_counter()
                c.infer(MODEL, [tensor])
                latencies.append(time.perf_counter() - start)
        return latencies

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        barrier.wait()
        start = time.perf_counter()
        latencies = np.array([lat for f in futures for lat in f.result()])
        elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="max_batch with batching on")
    parser.add_argument("--max-wait-ms", type=int, default=10)
    parser.add_argument("--requests", type=int, default=96, help="requests per concurrency level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra_op threads, 0 = all")
    parser.add_argument("--repeats", type=int, default=3,
                        help="best of this many passes, bare and served alike (damps a shared host's noise)")
    parser.add_argument("--no-spinning", action="store_true",
                        help="onnxruntime allow_spinning off (idle intra-op threads yield the cores)")
    args = parser.parse_args()

    video = shared_dir() / "data" / "videos" / "pets09_s2l1_pedestrians.avi"
    frames, jpegs = read_jpegs(video, 64, quality=90)
    base = {
        "models": {"dir": str(shared_dir() / "models")},
        "inference": {"session": {"intra_op_num_threads": args.threads,
                                  "allow_spinning": not args.no_spinning}},
        "serving": {"rate_limit_per_s": None, "max_pending_requests": 256, "max_wait_ms": args.max_wait_ms},
    }
    bare = Bare(base, frames[:32])
    h, w = frames[0].shape[:2]
    print(f"model {MODEL}:{VERSION}, pets09 {w}x{h} JPEG q90, {args.requests} requests per level, "
          f"intra_op_num_threads={args.threads or 'default'}, spinning={'off' if args.no_spinning else 'on'}, "
          f"max_wait_ms={args.max_wait_ms}, best of {args.repeats}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("bare = session.run alone (frames/s), measured just before each row; ratio = served req/s / bare;"
          " p50/p95 from the best served pass")
    b = args.batch
    print(f"{'batching':>12s} {'clients':>7s} {'req/s':>7s} {'p50 ms':>7s} {'p95 ms':>7s} "
          f"{'bare b1':>7s} {'bare b' + str(b):>7s} {'ratio b1':>8s} {'ratio b' + str(b):>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for max_batch in (b, 1):
            config = {**base, "serving": {**base["serving"], "max_batch": max_batch}}
            server = ServerProcess(config, Path(tmp))
            try:
                run_clients(server.url, jpegs, 4, 16)  # warm-up: connections, threads, allocations
                label = f"on (max {max_batch})" if max_batch > 1 else "off (max 1)"
                for clients in args.clients:
                    bare1, bare_n = bare.fps(1, args.repeats), bare.fps(b, args.repeats)
                    runs = [run_clients(server.url, jpegs, clients, max(args.requests, clients))
                            for _ in range(args.repeats)]
                    rps, lat = max(runs, key=lambda run: run[0])
                    p50, p95 = np.percentile(lat, [50, 95]) * 1000
                    print(f"{label:>12s} {clients:7d} {rps:7.1f} {p50:7.1f} {p95:7.1f} {bare1:7.1f} "
                          f"{bare_n:7.1f} {rps / bare1:8.2f} {rps / bare_n:8.2f}", flush=True)
            finally:
                server.stop()
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
