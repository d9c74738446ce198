"""Ingest throughput per core on a 720p clip: decode+sample+encode+produce vs PyAV's bare decode.

The benchmark makes its own 720p clip first: the street sample clip scaled to 1280x720 and
re-encoded with PyAV (libx264, main profile, no B-frames, 2 s GOP, as an IP camera
sends), in a temporary folder. Then, in this one process:

- bare: PyAV demux + decode of every frame, nothing else (the ceiling);
- ingest at ``--fps`` targets: ``IngestWorker`` on the clip as a file camera, read as
  fast as it decodes: decode, sample by presentation time, JPEG-encode the kept frames,
  Avro-encode and produce them to a topic prefix of its own on the configured broker
  (topics created before, deleted after), until the broker acknowledged every frame.

"Per core" is frames decoded per CPU-second of this process (all its threads: decoder,
OpenCV, librdkafka), so the figure does not depend on how many cores the host lends; the
broker's own CPU is not counted. Decoders run one thread per camera (``decoder_threads``,
the worker default). Each figure is the best of ``--repeats`` passes, which damps noise
from a shared host. Needs the local Kafka (``bash infra/up.sh``).

    .venv/bin/python bench/bench_ingest.py --fps 24 5 --repeats 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from pipeline.config import Settings, load_config, shared_dir
from pipeline.kafka.topics import create_topics, delete_topics
from pipeline.ingest.worker import IngestWorker

DEFAULT_CLIP = shared_dir() / "data" / "videos" / "street_cars_approaching.mp4"


@dataclass
class Run:
    label: str
    decoded: int
    sent: int
    wall_s: float
    cpu_s: float

    @property
    def fps(self) -> float:
        return self.decoded / self.wall_s

    @property
    def fps_per_core(self) -> float:
        return self.decoded / self.cpu_s


def make_720p(source: Path, folder: Path) -> tuple[Path, float]:
    """Scale ``source`` to 1280x720 and encode it as H.264 the way a camera would; returns (path, seconds)."""
    started = time.perf_counter()
    out_path = folder / "clip_720p.mp4"
    with av.open(str(source)) as src, av.open(str(out_path), "w") as dst:
        rate = src.streams.video[0].average_rate or Fraction(24)
        stream = dst.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "veryfast", "tune": "zerolatency", "profile": "main", "crf": "23",
                          "g": str(round(2 * rate))}
        for index, frame in enumerate(src.decode(video=0)):
            scaled = frame.reformat(width=1280, height=720, format="yuv420p")
            scaled.pts, scaled.time_base = index, 1 / rate
            dst.mux(stream.encode(scaled))
        dst.mux(stream.encode(None))
    return out_path, time.perf_counter() - started


def bare_decode(clip: Path, decoder_threads: int) -> Run:
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    decoded = 0
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        if decoder_threads == 1:
            stream.codec_context.thread_count = 1
        else:
            stream.codec_context.thread_type = "AUTO"
            stream.codec_context.thread_count = decoder_threads
        for packet in container.demux(stream):
            decoded += len(packet.decode())
    return Run("bare PyAV decode", decoded, 0, time.perf_counter() - started_wall, time.process_time() - started_cpu)


def bench_settings(base: Settings, clip: Path, fps: float) -> Settings:
    raw = base.model_dump()
    raw["kafka"]["sasl_password"] = base.kafka.sasl_password
    raw["clickhouse"]["password"] = base.clickhouse.password
    raw["topics"] = {**raw["topics"], "prefix": f"bench-ingest-{uuid.uuid4().hex[:8]}.", "partitions": 1}
    raw["ingest"] = {**raw["ingest"], "file_pacing": "none", "stats_interval_s": 0}
    raw["cameras"] = [{"id": "bench720p", "source": str(clip), "fps": fps}]
    return Settings.model_validate(raw)


def ingest(settings: Settings) -> Run:
    create_topics(settings)
    try:
        worker = IngestWorker(settings, start_ms=1_700_000_000_000)
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        stats = worker.run()["bench720p"]
        wall_s, cpu_s = time.perf_counter() - started_wall, time.process_time() - started_cpu
    finally:
        delete_topics(settings)
    if stats["frames_failed"] or stats["frames_sent"] != stats["frames_sampled"]:
        raise SystemExit(f"ingest run lost frames: {stats}")
    fps = settings.cameras[0].fps
    return Run(f"ingest at {fps:g} fps", stats["frames_read"], stats["frames_sent"], wall_s, cpu_s)


def best(runs: list[Run]) -> Run:
    return max(runs, key=lambda r: r.fps_per_core)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, help="camcount config (Kafka connection); default: defaults + env")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="clip to scale to 720p")
    parser.add_argument("--fps", type=float, nargs="+", default=[24.0, 5.0], help="ingest target rates")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = load_config(args.config)

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        clip, made_s = make_720p(args.clip, Path(tmp))
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            info = (f"{stream.codec_context.name} {stream.codec_context.profile} {stream.width}x{stream.height}, "
                    f"{stream.frames} frames, {float(stream.average_rate):.2f} fps, {clip.stat().st_size:,} bytes")
        print(f"720p clip: {info} (made in {made_s:.1f} s)")
        threads = base.ingest.decoder_threads
        bare = best([bare_decode(clip, threads) for _ in range(args.repeats)])
        runs = [best([ingest(bench_settings(base, clip, fps)) for _ in range(args.repeats)]) for fps in args.fps]

    print(f"decoder threads per camera: {threads}; JPEG quality {base.ingest.jpeg_quality}; "
          f"best of {args.repeats}")
    header = f"{'':<22}{'decoded':>8}{'sent':>7}{'wall s':>8}{'cpu s':>8}{'frames/s':>10}{'per core':>10}{'ratio':>7}"
    print(header)
    for run in [bare, *runs]:
        print(f"{run.label:<22}{run.decoded:>8}{run.sent:>7}{run.wall_s:>8.2f}{run.cpu_s:>8.2f}"
              f"{run.fps:>10.1f}{run.fps_per_core:>10.1f}{run.fps_per_core / bare.fps_per_core:>7.2f}")
    print("frames/s and per core count decoded (input) frames; ratio = per-core rate / bare decode per-core rate")


if __name__ == "__main__":
    main()
