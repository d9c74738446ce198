"""``camcount models ...`` (the model lifecycle) and ``camcount compare`` (the comparator).

    camcount models list                         versions, where each serves, camera groups
    camcount models shadow yolox-nano:1-b1 --rate 0.1
    camcount models canary yolox-nano:1-b1 --share 0.2
    camcount models promote yolox-nano:1-b1      the old primary goes on the rollback stack
    camcount models rollback                     the previous primary serves again
    camcount models promote yolox-nano:1-b1 --cameras 'parking-*'   the primary of a camera group
    camcount models rollback --cameras 'parking-*'   its previous one, or the global primary again
    camcount models compare yolox-nano:1-b1      model_comparison read back from ClickHouse
    camcount models audit                        who changed what, when
    camcount models quantize yolox-nano:1 --calibration clip.mp4   an INT8 candidate to register
    camcount compare                             run the comparator (faust)

Every change is written to the compacted model-control topic (workers follow it live) and
to ClickHouse ``model_audit`` with who (``--by``, else $CAMCOUNT_USER, else $USER), when
and what.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path
from typing import Callable

from pipeline.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="model versions: list, shadow, canary, promote, rollback")
    sub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="registry versions and the current assignment").set_defaults(handler=_list)
    sub.add_parser("audit", help="the model-control change log from ClickHouse").set_defaults(handler=_audit)

    shadow = sub.add_parser("shadow", help="run a candidate on a sample of frames (rate 0 stops it)")
    shadow.add_argument("model", metavar="NAME:VER")
    shadow.add_argument("--rate", type=_fraction, required=True, help="fraction of frames mirrored, 0..1")
    canary = sub.add_parser("canary", help="serve a share of cameras with a candidate (share 0 ends it)")
    canary.add_argument("model", metavar="NAME:VER")
    canary.add_argument("--share", type=_fraction, required=True, help="fraction of cameras, 0..1")
    promote = sub.add_parser("promote", help="make a version the primary (of a camera group with --cameras)")
    promote.add_argument("model", metavar="NAME:VER")
    promote.add_argument("--cameras", metavar="GLOB", help="the primary of the cameras whose id matches GLOB "
                         "(e.g. 'parking-*'), before the canary and the global primary")
    promote.add_argument("--max-error-rate", type=_fraction, default=0.5,
                         help="roll back by itself when more of its recent runs fail (default 0.5)")
    promote.add_argument("--max-latency-ms", type=float, default=5000.0,
                         help="... or when its recent run time p95 exceeds this (default 5000)")
    promote.add_argument("--min-batches", type=int, default=5,
                         help="runs seen before judging (default 5)")
    rollback = sub.add_parser("rollback", help="the previous primary serves again (in a camera group with --cameras)")
    rollback.add_argument("--cameras", metavar="GLOB", help="roll back the camera group GLOB; past its first "
                          "primary the group ends and its cameras go back to the global primary")
    for p, handler in ((shadow, _shadow), (canary, _canary), (promote, _promote), (rollback, _rollback)):
        p.add_argument("--by", help="who makes the change (default: $CAMCOUNT_USER or $USER)")
        p.add_argument("--reason", default="", help="why, kept in the audit log")
        p.set_defaults(handler=handler)

    compare = sub.add_parser("compare", help="print a candidate's agreement with the primary")
    compare.add_argument("model", metavar="NAME:VER")
    compare.add_argument("--last-s", type=int, default=24 * 3600, help="windows of the last S seconds")
    compare.set_defaults(handler=_compare)

    quantize = sub.add_parser("quantize", help="build an INT8 variant of a version, to register and judge")
    quantize.add_argument("model", metavar="NAME:VER")
    quantize.add_argument("--calibration", type=Path, required=True, metavar="VIDEO",
                          help="footage like the cameras' (its frames set the activation ranges)")
    quantize.add_argument("--frames", type=int, default=64, help="calibration frames, spread over VIDEO (default 64)")
    quantize.add_argument("--version", help="the new version (default: VER-int8)")
    quantize.add_argument("--out", type=Path, help="where to write the file (default: the model cache, "
                          "where the registry looks for a relative file)")
    quantize.set_defaults(handler=_quantize)

    app = subparsers.add_parser("compare", help="run the comparator: primary vs shadow detections")
    app.add_argument("--window-s", type=int, default=10, help="comparison window (default 10 s)")
    app.add_argument("--max-wait-ms", type=int, default=5000,
                     help="how long a frame waits for its other side, in event time (default 5000)")
    app.set_defaults(handler=_run_comparator)


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not within 0..1")
    return number


def _who(args: argparse.Namespace) -> str:
    return args.by or os.environ.get("CAMCOUNT_USER") or getpass.getuser()


def _known(settings: Settings, model: str) -> str:
    from pipeline.inference.registry import registry_from_settings
    from pipeline.shadow.assignment import parse_model_key

    registry_from_settings(settings).get(*parse_model_key(model))  # ConfigError naming the known ones
    return model


def _apply(settings: Settings, fn: Callable) -> int:
    from pipeline.shadow import control

    before, after = control.change(settings, fn)
    print(f"revision {after.revision}: {after.action} by {after.changed_by}: primary {after.primary}"
          f" (was {before.primary})" + (f"; {after.reason}" if after.reason else ""))
    return 0


def _shadow(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.shadow import assignment as am
    from pipeline.shadow.control import now_ms

    model = _known(settings, args.model)
    return _apply(settings, lambda a: am.set_shadow(a, model, args.rate, _who(args), now_ms()))


def _canary(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.shadow import assignment as am
    from pipeline.shadow.control import now_ms

    model = _known(settings, args.model)
    return _apply(settings, lambda a: am.set_canary(a, model, args.share, _who(args), now_ms(), args.reason))


def _promote(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.shadow import assignment as am
    from pipeline.shadow.control import now_ms

    model = _known(settings, args.model)
    limits = am.FailoverLimits(args.max_error_rate, args.max_latency_ms, args.min_batches)
    return _apply(settings, lambda a: am.promote(a, model, _who(args), now_ms(), args.reason, limits, args.cameras))


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.shadow import assignment as am
    from pipeline.shadow.control import now_ms

    return _apply(settings, lambda a: am.rollback(a, _who(args), now_ms(), args.reason, cameras=args.cameras))


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.inference.registry import registry_from_settings
    from pipeline.shadow.control import read_assignment

    registry = registry_from_settings(settings)
    a = read_assignment(settings)
    print(f"{'VERSION':<24} {'ROLE':<28} FILE")
    for key in registry.keys():
        spec = registry.get(*key.split(":", 1))
        print(f"{key:<24} {', '.join(_roles(a, key)) or '-':<28} {spec.file}")
    if a.groups:
        print("camera groups (the first matching glob wins, before the canary and the global primary):")
        for g in a.groups:
            print(f"  {g.cameras:<22} {g.primary:<28}" + (f" previous {', '.join(g.history)}" if g.history else ""))
    print(f"revision {a.revision}: {a.action} by {a.changed_by}" + (f" ({a.reason})" if a.reason else ""))
    return 0


def _roles(a, key: str) -> list[str]:
    """Where ``key`` serves (``primary``, ``canary 0.1``, ``cameras parking-*``), where it runs
    in shadow, and whether it is a rollback target."""
    shadows = {s.model: s.rate for s in a.shadows}
    roles = (["primary"] if key == a.primary else []) + \
            ([f"canary {a.canary.share:g}"] if a.canary and a.canary.model == key else []) + \
            [f"cameras {g.cameras}" for g in a.groups if g.primary == key] + \
            ([f"shadow {shadows[key]:g}"] if key in shadows else [])
    rollback_targets = set(a.history) | {v for g in a.groups for v in g.history}
    return roles or (["previous"] if key in rollback_targets else [])


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.sinks.clickhouse import make_client

    rows = make_client(settings.clickhouse).execute(
        "SELECT revision, toString(ts), action, changed_by, model, previous_primary, primary_model, reason "
        "FROM model_audit FINAL ORDER BY revision, ts_ms")
    for rev, ts, action, by, model, before, after, reason in rows:
        print(f"{rev:>4} {ts} {action:<8} {by:<20} {model:<20} {before} -> {after}  {reason}")
    return 0


def _compare(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.shadow.assignment import parse_model_key
    from pipeline.shadow.report import comparison_summary

    name, version = parse_model_key(args.model)
    for line in comparison_summary(settings, name, version, args.last_s):
        print(line)
    return 0


def _quantize(args: argparse.Namespace, settings: Settings) -> int:
    """Write the INT8 file and print its registry entry: registering it is the operator's step."""
    import yaml

    from pipeline.inference import quantize as q
    from pipeline.inference.detector import load_detector
    from pipeline.inference.registry import registry_from_settings, sha256_hex
    from pipeline.shadow.assignment import parse_model_key

    name, version = parse_model_key(args.model)
    registry = registry_from_settings(settings)
    detector = load_detector(registry, name, version, settings.inference.session)
    spec, new_version = detector.spec, args.version or f"{version}-int8"
    frames = q.video_frames(args.calibration, args.frames)
    notice = (f"INT8 (QDQ) quantization of {spec.key} ({spec.file}, sha256 {spec.sha256[:12]}...) by camcount "
              f"models quantize, calibrated on {len(frames)} frames of {args.calibration.name}; weights otherwise unchanged")
    data = q.quantize_int8(registry.read_verified(spec), spec.input.name, q.calibration_inputs(detector, frames), notice)
    file = f"{Path(spec.file).stem}-int8.onnx"
    out = args.out.resolve() if args.out else registry.cache_dir / name / new_version / file
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    entry = q.registry_entry(spec, new_version, str(out) if args.out else file, sha256_hex(data))
    print(f"# {spec.key} quantized to INT8 with {len(frames)} frames of {args.calibration.name}: {out}\n"
          f"# add this under 'models:' in {registry.source}, then judge it against the primary:\n"
          f"#   camcount models shadow {name}:{new_version} --rate 0.1 ; camcount models compare {name}:{new_version}")
    print(yaml.safe_dump([entry], sort_keys=False, default_flow_style=None, width=100), end="")
    return 0


def _run_comparator(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.inference.registry import registry_from_settings
    from pipeline.kafka.faust_app import serve
    from pipeline.shadow.app import CompareOptions, build_app

    options = CompareOptions(window_ms=args.window_s * 1000, max_wait_ms=args.max_wait_ms)
    return serve(settings, "compare", build_app(settings, registry_from_settings(settings), options))
