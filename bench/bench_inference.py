"""Inference worker throughput, Kafka to Kafka, against bare onnxruntime on the same model.

In one process, on one clip and one loaded model:

- bare: ``session.run`` on tensors letterboxed in advance (the ceiling), per batch size,
  with the worker's session settings called by ``model_runs`` threads at once, and with
  onnxruntime's defaults (a thread per core, spinning) called by one: the faster of the
  two is the reference;
- worker: N frames pre-produced to a fresh ``frames`` topic (JPEG, as ingest writes them),
  then ``InferenceWorker`` consumes them all and produces their detections; timed from its
  first polled frame to the broker's ack of the last detections.

Prints frames/s of each and the ratios worker / bare at the same batch size (to the faster
reference, and to plain onnxruntime: one caller, default session), for each batch size of
the sweep, as min / median / max over ``--repeats`` runs (the host is shared and
noisy). Below ``--target`` it prints where the worker's time went: per-stage ms per frame,
how busy the model thread was, CPU ms per frame by thread (from /proc, Linux).

    .venv/bin/python bench/bench_inference.py --frames 480 --sweep 1,4,8 --repeats 3
    .venv/bin/python bench/bench_inference.py --sweep 8 --max-width 416   # frames sized for the model
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from backlog import produce_all
from clips import read_jpegs
from pipeline.codec import FRAME, default_codec
from pipeline.config import Settings, load_config, shared_dir
from pipeline.inference.build import load_worker_detector
from pipeline.inference.detector import OnnxDetector
from pipeline.inference.timing import StageTimings
from pipeline.inference.worker import InferenceWorker
from pipeline.kafka import topics


def with_overrides(settings: Settings, **sections: dict) -> Settings:
    """A copy of ``settings`` with some keys of some sections replaced (validated again)."""
    raw = settings.model_dump(mode="python")
    for section, values in sections.items():
        raw[section].update(values)
    raw["kafka"]["sasl_password"] = settings.kafka.sasl_password
    raw["clickhouse"]["password"] = settings.clickhouse.password
    return Settings.model_validate(raw)


def bare_fps(detector: OnnxDetector, frames: list[np.ndarray], batch: int, passes: int,
             callers: int = 1) -> float:
    """Frames/s of ``session.run`` alone on pre-letterboxed tensors (after a warm-up run),
    called by ``callers`` threads at once (as the worker's ``model_runs`` do)."""
    tensors = [detector.preprocess(frames[i : i + batch]).tensor.copy()
               for i in range(0, len(frames) - batch + 1, batch)]
    names, feed = [detector.spec.output.name], detector.spec.input.name
    detector.session.run(names, {feed: tensors[0]})

    def loop(offset: int) -> None:
        for _ in range(passes):
            for tensor in tensors[offset::callers]:
                detector.session.run(names, {feed: tensor})

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return passes * batch * len(tensors) / (time.perf_counter() - start)


def produce_frames(settings: Settings, jpegs: list[bytes], size_wh: tuple[int, int], total: int,
                   cameras: int) -> None:
    codec, now_ms = default_codec(), int(time.time() * 1000)
    produce_all(settings, topics.name(settings, topics.FRAMES), (
        (f"bench-{n % cameras}".encode(), codec.encode(FRAME, dict(
            camera_id=f"bench-{n % cameras}", stream_id="bench", seq=n // cameras, capture_ts_ms=now_ms + n,
            width=size_wh[0], height=size_wh[1], data=jpegs[n % len(jpegs)])))
        for n in range(total)))


def worker_run(base: Settings, detector: OnnxDetector, jpegs: list[bytes], size_wh: tuple[int, int],
               args: argparse.Namespace, batch: int) -> dict:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    pending = max(base.inference.max_pending_frames, batch)
    settings = with_overrides(base, topics={"prefix": prefix, "partitions": args.partitions},
                              inference={"max_batch": batch, "max_pending_frames": pending})
    topics.create_topics(settings)
    try:
        produce_frames(settings, jpegs, size_wh, args.frames, args.cameras)
        detector.recorder = StageTimings()
        worker = InferenceWorker(settings, detector, group_id=f"{prefix}bench",
                                 max_frames=args.frames, write_stats=False)
        cpu_before, broker_before = resource.getrusage(resource.RUSAGE_SELF), broker_cpu_s()
        threads_before, sampler = ThreadCpu().stop(), ThreadCpu()
        totals = worker.run()
        threads = sampler.stop()
        cpu_after, broker_after = resource.getrusage(resource.RUSAGE_SELF), broker_cpu_s()
    finally:
        topics.delete_topics(settings)
    wall_s = worker.last_finished_s - worker.first_polled_s
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    threads = {k: v - threads_before.get(k, 0.0) for k, v in threads.items()}
    broker_s = None if broker_before is None or broker_after is None else broker_after - broker_before
    return {"fps": totals["finished"] / wall_s, "wall_s": wall_s, "cpu_s": cpu_s, "broker_s": broker_s,
            "totals": totals,
            "stages": detector.recorder.snapshot(), "threads": threads}


def broker_cpu_s() -> float | None:
    """CPU seconds used so far by the local Kafka broker that ``infra/up.sh`` started (it
    shares this host's cores with the worker), or None when there is none."""
    state = Path(os.environ.get("CAMCOUNT_STATE_DIR", Path(__file__).resolve().parents[1] / ".camcount"))
    try:
        pid = int((state / "run" / "kafka.pid").read_text())
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ThreadCpu:
    """CPU seconds per thread of this process, sampled until ``stop`` (threads that exit
    keep their last sample), grouped by Python thread name (others: their OS name)."""

    def __init__(self) -> None:
        self._ticks: dict[int, int] = {}
        self._names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        self._names.update({t.native_id: t.name for t in threading.enumerate() if t.native_id})
        for tid in os.listdir("/proc/self/task"):
            try:
                stat = open(f"/proc/self/task/{tid}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            self._ticks[int(tid)] = int(fields[11]) + int(fields[12])
            self._names.setdefault(int(tid), stat[stat.index("(") + 1:stat.rindex(")")])

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample()
        out: dict[str, float] = {}
        for tid, ticks in self._ticks.items():
            name = self._names[tid].rstrip("0123456789_").replace("python3", "python")
            out[name] = out.get(name, 0.0) + ticks / os.sysconf("SC_CLK_TCK")
        return out


def spread(values: list[float], digits: int = 1) -> str:
    return " ".join(f"{v:7.{digits}f}" for v in (min(values), statistics.median(values), max(values)))


def profile(run: dict, bare: float) -> None:
    print(f"    profile of the median run ({run['totals']['finished']} frames, {run['wall_s']:.2f} s):")
    busy_ms = 0.0
    for (_, _, stage), st in sorted(run["stages"].items(), key=lambda kv: kv[0][2]):
        print(f"      {stage:11s} {st.mean_ms_per_frame:6.2f} ms/frame  ({st.calls} calls)")
        if stage == "run":
            busy_ms = 1000 * st.total_s
    print(f"      bare run   {1000 / bare:6.2f} ms/frame")
    print(f"      model thread busy {100 * busy_ms / 1000 / run['wall_s']:5.1f}% of the wall time;"
          f" process CPU {1000 * run['cpu_s'] / run['totals']['finished']:.2f} ms/frame"
          f" ({run['cpu_s'] / run['wall_s']:.2f} cores)"
          + ("" if run["broker_s"] is None else
             f"; the local Kafka broker {1000 * run['broker_s'] / run['totals']['finished']:.2f} ms/frame"))
    print(f"      paused {run['totals'].get('paused', 0)} times, max in flight "
          f"{run['totals'].get('max_in_flight_frames', 0)} frames")
    frames = run["totals"]["finished"]
    busiest = sorted(run["threads"].items(), key=lambda kv: -kv[1])
    print("      CPU ms/frame by thread (onnxruntime's pool threads are unnamed 'python'):",
          ", ".join(f"{name} {1000 * s / frames:.2f}" for name, s in busiest if s * 1000 / frames >= 0.05))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, help="camcount config (default: defaults + env)")
    parser.add_argument("--frames", type=int, default=480, help="frames per worker run")
    parser.add_argument("--clip-frames", type=int, default=96, help="distinct clip frames (cycled)")
    parser.add_argument("--sweep", default="1,4,8", help="batch sizes (the configured one is added)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality (ingest's default)")
    parser.add_argument("--max-width", type=int, help="downscale frames as ingest's max_width does "
                        "(e.g. the model's input width); default: the clip's size")
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--bare-passes", type=int, default=2, help="passes over the clip per bare run")
    parser.add_argument("--profile", action="store_true", help="print the profile even above target")
    parser.add_argument("--video", type=Path,
                        default=shared_dir() / "data/videos/pets09_s2l1_pedestrians.avi")
    return parser.parse_args()


def measure(base: Settings, detectors: tuple[OnnxDetector, OnnxDetector], frames: list[np.ndarray],
            jpegs: list[bytes], args: argparse.Namespace, batch: int
            ) -> tuple[dict[str, list[float]], list[dict], dict[str, list[float]]]:
    """``repeats`` x (bare, worker, bare): each ratio is a worker run over the bare runs
    right around it, so it compares like with like on a host whose speed drifts. Bare is
    the faster of the worker's session called by ``model_runs`` threads at once ("runs")
    and onnxruntime's default session (one thread per core, spinning) called by one ("ort")."""
    worker_detector, default_detector = detectors
    size_wh = (frames[0].shape[1], frames[0].shape[0])

    def bare_now() -> dict[str, float]:
        return {"runs": bare_fps(worker_detector, frames, batch, args.bare_passes, base.inference.model_runs),
                "ort": bare_fps(default_detector, frames, batch, args.bare_passes)}

    bare: dict[str, list[float]] = {"runs": [], "ort": [], "best": []}
    runs: list[dict] = []
    ratios: dict[str, list[float]] = {"ort": [], "best": []}
    for _ in range(args.repeats):
        before = bare_now()
        runs.append(worker_run(base, worker_detector, jpegs, size_wh, args, batch))
        after = bare_now()
        for kind in ("runs", "ort"):
            bare[kind].append((before[kind] + after[kind]) / 2)
        bare["best"].append(max(bare["runs"][-1], bare["ort"][-1]))
        for kind in ratios:
            ratios[kind].append(runs[-1]["fps"] / bare[kind][-1])
    return bare, runs, ratios


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = load_config(args.config)
    cfg = base.inference
    detector = load_worker_detector(base)
    # The bare reference also runs onnxruntime's default session, one caller.
    default = load_worker_detector(with_overrides(base, inference={
        "model_runs": 1, "session": {"allow_spinning": True, "intra_op_num_threads": 0}}))
    frames, jpegs = read_jpegs(args.video, args.clip_frames, args.quality, args.max_width)
    print(f"model {detector.name}:{detector.version} on {detector.session.get_providers()[0]}, "
          f"model_runs={cfg.model_runs} x intra_op_num_threads={cfg.worker_session.intra_op_num_threads or 'default'}, "
          f"allow_spinning={cfg.session.allow_spinning}, decode_threads={cfg.decode_threads}; "
          f"clip {args.video.name} {frames[0].shape[1]}x{frames[0].shape[0]}, {args.clip_frames} frames "
          f"cycled, JPEG q{args.quality} ~{np.mean([len(j) for j in jpegs]) / 1024:.0f} KiB; "
          f"{args.frames} frames per worker run, {args.cameras} cameras on {args.partitions} partitions")
    sweep = sorted({int(b) for b in args.sweep.split(",")} | {cfg.max_batch})
    medians: dict[int, dict[str, float]] = {}
    print("batch   kind                    min  median     max   frames/s (ratio: worker / bare)")
    for batch in sweep:
        bare, runs, ratios = measure(base, (detector, default), frames, jpegs, args, batch)
        print(f"{batch:5d}   bare, ort defaults  {spread(bare['ort'])}   (one caller, a thread per core)")
        print(f"{batch:5d}   bare, model_runs    {spread(bare['runs'])}   ({cfg.model_runs} callers, the worker's session)")
        print(f"{batch:5d}   bare (the faster)   {spread(bare['best'])}")
        print(f"{batch:5d}   worker Kafka->Kafka {spread([r['fps'] for r in runs])}")
        print(f"{batch:5d}   ratio / ort         {spread(ratios['ort'], 2)}")
        print(f"{batch:5d}   ratio / the faster  {spread(ratios['best'], 2)}")
        medians[batch] = {"bare": statistics.median(bare["best"]), "worker": statistics.median(r["fps"] for r in runs),
                          "ort": statistics.median(ratios["ort"]), "best": statistics.median(ratios["best"])}
        if args.profile or medians[batch]["best"] < args.target:
            profile(sorted(runs, key=lambda r: r["fps"])[len(runs) // 2], medians[batch]["bare"])
    m = medians[cfg.max_batch]
    batch_1 = f"bare batch 1 {medians[1]['bare']:.1f} frames/s; " if 1 in medians else ""
    print(f"summary (medians): {batch_1}configured batch {cfg.max_batch}: bare {m['bare']:.1f}, "
          f"worker {m['worker']:.1f} frames/s, ratio {m['best']:.2f} to the faster bare, {m['ort']:.2f} to "
          f"onnxruntime's defaults (target {args.target:.2f})")


if __name__ == "__main__":
    main()
