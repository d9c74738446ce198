"""Constant-velocity Kalman filter over boxes, vectorised over many tracks.

The state of one track is ``[cx, cy, w, h, vcx, vcy, vw, vh]`` in normalised image
units, velocities per second. Time steps come from capture timestamps, because
frames drop and cameras are sampled at different rates: a fixed per-frame step
would make a 5 fps camera look five times slower than a 25 fps one. Noise grows
with the time step and scales with box size, so the same settings fit near and
far objects. Everything is plain ``float64`` arrays so the tracker can serialise
them to a changelog and replay them exactly.

The four box components never interact (diagonal noise, a measurement of each
component alone), so the 8x8 covariance of a track is four independent 2x2 blocks,
one per component and its velocity, and is kept as their distinct entries: ``(N, 3, 4)``
arrays of variance of the component, its covariance with its velocity, and the
velocity's variance. The filter is then a few element-wise operations instead of
8x8 matrix products, solves and a covariance of 64 numbers a track.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATE_DIM = 8
MEASURE_DIM = 4
_MIN_SIZE = 1e-6


@dataclass(frozen=True)
class MotionNoise:
    """Noise levels, as fractions of the box size (w for x terms, h for y terms).

    The defaults are ByteTrack's per-frame values at 30 fps restated per second.
    Raising ``position_per_s``/``velocity_per_s`` lets tracks follow sudden turns
    and speed changes but makes predictions during occlusion vaguer; raising
    ``measurement`` trusts detections less and smooths more.
    """

    position_per_s: float = 0.27
    velocity_per_s: float = 1.0
    measurement: float = 0.05
    initial_position: float = 0.1
    initial_velocity_per_s: float = 2.0


def xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    """Convert ``(N, 4)`` corner boxes to centre/size measurements."""
    xyxy = np.asarray(xyxy, np.float64)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return np.concatenate([xyxy[:, :2] + wh / 2.0, wh], axis=1)


def cxcywh_to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    """Convert ``(N, 4)`` centre/size boxes to corners, sizes floored above zero."""
    cxcywh = np.asarray(cxcywh, np.float64)
    half = np.maximum(cxcywh[:, 2:4], _MIN_SIZE) / 2.0
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)


def _size_scale(sizes: np.ndarray) -> np.ndarray:
    """Per-component scale ``[w, h, w, h]`` from ``(N, 2)`` sizes, floored above zero."""
    sizes = np.maximum(sizes, _MIN_SIZE)
    return np.concatenate([sizes, sizes], axis=1)


def initiate(measurements: np.ndarray, noise: MotionNoise) -> tuple[np.ndarray, np.ndarray]:
    """Start tracks at ``(N, 4)`` cxcywh measurements with zero velocity."""
    measurements = np.asarray(measurements, np.float64).reshape(-1, MEASURE_DIM)
    n = len(measurements)
    mean = np.concatenate([measurements, np.zeros((n, 4))], axis=1)
    scale = _size_scale(measurements[:, 2:4])
    cov = np.stack([(noise.initial_position * scale) ** 2, np.zeros((n, MEASURE_DIM)),
                    (noise.initial_velocity_per_s * scale) ** 2], axis=1)
    return mean, cov


def predict(
    mean: np.ndarray, cov: np.ndarray, dt_s: float, noise: MotionNoise
) -> tuple[np.ndarray, np.ndarray]:
    """Advance all tracks by ``dt_s`` seconds; returns new arrays, inputs untouched.

    Process noise is a random walk whose variance grows linearly with ``dt_s``, so
    two half steps give the same uncertainty as one full step. Per component this is
    ``F P F^T + Q`` with ``F = [[1, dt], [0, 1]]``.
    """
    dt_s = max(float(dt_s), 0.0)
    new_mean = mean.copy()
    new_mean[:, :4] += dt_s * mean[:, 4:]
    scale = _size_scale(mean[:, 2:4])
    pp, pv, vv = cov[:, 0], cov[:, 1], cov[:, 2]
    new_cov = np.stack([
        pp + 2.0 * dt_s * pv + dt_s * dt_s * vv + (noise.position_per_s * scale) ** 2 * dt_s,
        pv + dt_s * vv,
        vv + (noise.velocity_per_s * scale) ** 2 * dt_s,
    ], axis=1)
    return new_mean, new_cov


def update(
    mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray, noise: MotionNoise
) -> tuple[np.ndarray, np.ndarray]:
    """Correct ``(N, 8)`` states with ``(N, 4)`` cxcywh measurements, row by row.

    Each component is measured alone, so the innovation covariance is diagonal and
    the gain a division: ``K = [pp, pv] / (pp + r)``.
    """
    measurements = np.asarray(measurements, np.float64).reshape(-1, MEASURE_DIM)
    if len(mean) == 0:
        return mean.copy(), cov.copy()
    scale = _size_scale(mean[:, 2:4])
    pp, pv, vv = cov[:, 0], cov[:, 1], cov[:, 2]
    innovation_var = pp + (noise.measurement * scale) ** 2
    gain_p, gain_v = pp / innovation_var, pv / innovation_var
    innovation = measurements - mean[:, :4]
    new_mean = np.concatenate([mean[:, :4] + gain_p * innovation, mean[:, 4:] + gain_v * innovation], axis=1)
    new_cov = np.stack([(1.0 - gain_p) * pp, (1.0 - gain_p) * pv, vv - gain_v * pv], axis=1)
    return new_mean, new_cov


def cov_blocks(cov: np.ndarray) -> np.ndarray:
    """Full ``(N, 8, 8)`` covariances (as version 1 of the tracker state saved them) as ``(N, 3, 4)``."""
    i = np.arange(MEASURE_DIM)
    return np.stack([cov[:, i, i], cov[:, i, i + MEASURE_DIM], cov[:, i + MEASURE_DIM, i + MEASURE_DIM]], axis=1)
