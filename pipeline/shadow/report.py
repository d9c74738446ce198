"""``camcount models compare``: a candidate's model_comparison rows, summed per camera and class."""

from __future__ import annotations

from collections import defaultdict

from pipeline.config import Settings


def read_comparison(settings: Settings, name: str, version: str, last_s: int) -> list[tuple]:
    """Rows of the candidate's windows that ended in the last ``last_s`` seconds (latest copy
    of each window)."""
    from pipeline.sinks.clickhouse import make_client

    return make_client(settings.clickhouse).execute(
        "SELECT camera_id, primary_model, primary_version, frames_compared, class_name, matched, "
        "candidate_boxes, primary_boxes, count_diff, primary_latency_p50_ms, primary_latency_p95_ms, "
        "candidate_latency_p50_ms, candidate_latency_p95_ms "
        "FROM model_comparison FINAL "
        "WHERE candidate_model = %(name)s AND candidate_version = %(version)s "
        "AND window_end >= now() - %(last_s)s ORDER BY camera_id, window_start",
        {"name": name, "version": version, "last_s": last_s})


def comparison_summary(settings: Settings, name: str, version: str, last_s: int) -> list[str]:
    rows = read_comparison(settings, name, version, last_s)
    if not rows:
        return [f"no comparison of {name}:{version} in the last {last_s} s "
                "(is it in shadow, and is `camcount compare` running?)"]
    cams: dict[str, dict] = defaultdict(lambda: {"frames": 0, "diff": 0, "windows": 0, "lat": [],
                                                 "classes": defaultdict(lambda: [0, 0, 0])})
    for camera, p_name, p_ver, frames, classes, matched, cand, prim, diff, *latency in rows:
        cam = cams[camera]
        cam["primary"] = f"{p_name}:{p_ver}"
        cam["frames"] += frames
        cam["diff"] += diff
        cam["windows"] += 1
        cam["lat"].append(latency)
        for c, m, cb, pb in zip(classes, matched, cand, prim):
            totals = cam["classes"][c]
            totals[0] += m
            totals[1] += cb
            totals[2] += pb
    out = [f"{name}:{version} against the primary, last {last_s} s"]
    for camera, cam in sorted(cams.items()):
        worst = [max(v[i] for v in cam["lat"]) for i in range(4)]
        out.append(f"{camera}: {cam['windows']} windows, {cam['frames']} frames, primary {cam['primary']}, "
                   f"count diff {cam['diff']:+d}; run ms p50/p95 primary {worst[0]:.1f}/{worst[1]:.1f}, "
                   f"candidate {worst[2]:.1f}/{worst[3]:.1f} (worst window)")
        for c, (m, cb, pb) in sorted(cam["classes"].items()):
            precision = m / cb if cb else 1.0
            recall = m / pb if pb else 1.0
            out.append(f"  {c:<14} precision {precision:.3f}  recall {recall:.3f}  "
                       f"(matched {m}, candidate {cb}, primary {pb})")
    return out
