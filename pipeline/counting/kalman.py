"""Constant-velocity Kalman filter over boxes, vectorised over many tracks.

The state of one track is ``[cx, cy, w, h, vcx, vcy, vw, vh]`` in normalised image
units, velocities per second. Time steps come from capture timestamps, because
frames drop and cameras are sampled at different rates: a fixed per-frame step
would make a 5 fps camera look five times slower than a 25 fps one. Noise grows
with the time step and scales with box size, so the same settings fit near and
far objects. Everything is plain ``float64`` arrays so the tracker can serialise
them to a changelog and replay them exactly.

The four box components never interact (diagonal noise, a measurement of each
component alone), so a covariance is four independent 2x2 blocks, one per component
and its velocity: ``cov_blocks`` keeps their 12 distinct entries instead of 64.
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
    std = np.concatenate([noise.initial_position * scale, noise.initial_velocity_per_s * scale], axis=1)
    cov = np.zeros((n, STATE_DIM, STATE_DIM))
    idx = np.arange(STATE_DIM)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(
    mean: np.ndarray, cov: np.ndarray, dt_s: float, noise: MotionNoise
) -> tuple[np.ndarray, np.ndarray]:
    """Advance all tracks by ``dt_s`` seconds; returns new arrays, inputs untouched.

    Process noise is a random walk whose variance grows linearly with ``dt_s``, so
    two half steps give the same uncertainty as one full step.
    """
    dt_s = max(float(dt_s), 0.0)
    transition = np.eye(STATE_DIM)
    transition[:4, 4:] = dt_s * np.eye(4)
    new_mean = np.einsum("ij,nj->ni", transition, mean)
    scale = _size_scale(mean[:, 2:4])
    variance = (
        np.concatenate([(noise.position_per_s * scale) ** 2, (noise.velocity_per_s * scale) ** 2], axis=1)
        * dt_s
    )
    new_cov = np.einsum("ij,njk,lk->nil", transition, cov, transition)
    idx = np.arange(STATE_DIM)
    new_cov[:, idx, idx] += variance
    return new_mean, new_cov


def update(
    mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray, noise: MotionNoise
) -> tuple[np.ndarray, np.ndarray]:
    """Correct ``(N, 8)`` states with ``(N, 4)`` cxcywh measurements, row by row."""
    measurements = np.asarray(measurements, np.float64).reshape(-1, MEASURE_DIM)
    if len(mean) == 0:
        return mean.copy(), cov.copy()
    scale = _size_scale(mean[:, 2:4])
    meas_var = (noise.measurement * scale) ** 2
    projected_cov = cov[:, :4, :4].copy()
    idx = np.arange(MEASURE_DIM)
    projected_cov[:, idx, idx] += meas_var
    cross = cov[:, :, :4]  # P H^T, since H selects the first four components
    # K = P H^T S^-1, computed as solve(S, (P H^T)^T)^T because S is symmetric.
    gain = np.linalg.solve(projected_cov, np.swapaxes(cross, 1, 2)).swapaxes(1, 2)
    innovation = measurements - mean[:, :4]
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = cov - np.einsum("nij,njk->nik", gain, cov[:, :4, :])
    new_cov = (new_cov + np.swapaxes(new_cov, 1, 2)) / 2.0
    return new_mean, new_cov


def cov_blocks(cov: np.ndarray) -> np.ndarray:
    """``(N, 8, 8)`` covariances as ``(N, 3, 4)``: each component's variance, its covariance
    with its velocity, and the velocity's variance (every other entry is zero)."""
    i = np.arange(MEASURE_DIM)
    return np.stack([cov[:, i, i], cov[:, i, i + MEASURE_DIM], cov[:, i + MEASURE_DIM, i + MEASURE_DIM]], axis=1)


def cov_from_blocks(blocks: np.ndarray) -> np.ndarray:
    """The inverse of ``cov_blocks``."""
    cov = np.zeros((len(blocks), STATE_DIM, STATE_DIM))
    i = np.arange(MEASURE_DIM)
    cov[:, i, i], cov[:, i + MEASURE_DIM, i + MEASURE_DIM] = blocks[:, 0], blocks[:, 2]
    cov[:, i, i + MEASURE_DIM] = cov[:, i + MEASURE_DIM, i] = blocks[:, 1]
    return cov
