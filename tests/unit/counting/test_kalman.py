from __future__ import annotations

import numpy as np
import pytest

from pipeline.counting import kalman
from pipeline.counting.kalman import MotionNoise

from .conftest import full_covariance

NOISE = MotionNoise()


def _blocks(variance: float, n: int = 1) -> np.ndarray:
    """Covariance blocks ``(n, 3, 4)`` of independent components: ``variance`` for values and velocities."""
    return np.tile(np.array([[variance] * 4, [0.0] * 4, [variance] * 4]), (n, 1, 1))


def _track(frame_interval_ms: int, duration_ms: int, velocity_per_s: float) -> np.ndarray:
    """Follow a box moving right at ``velocity_per_s``; return the final state mean."""
    mean = cov = None
    last_ts = 0
    for ts in range(0, duration_ms + 1, frame_interval_ms):
        xyxy = np.array([[0.1 + velocity_per_s * ts / 1000, 0.4, 0.15 + velocity_per_s * ts / 1000, 0.55]])
        measured = kalman.xyxy_to_cxcywh(xyxy)
        if mean is None:
            mean, cov = kalman.initiate(measured, NOISE)
        else:
            mean, cov = kalman.predict(mean, cov, (ts - last_ts) / 1000, NOISE)
            mean, cov = kalman.update(mean, cov, measured, NOISE)
        last_ts = ts
    return mean[0]


def test_box_conversions_round_trip():
    xyxy = np.array([[0.1, 0.2, 0.3, 0.6], [0.5, 0.5, 0.52, 0.9]])
    np.testing.assert_allclose(kalman.cxcywh_to_xyxy(kalman.xyxy_to_cxcywh(xyxy)), xyxy)


@pytest.mark.parametrize("frame_interval_ms", [40, 100, 200])  # 25, 10 and 5 fps
def test_velocity_is_per_second_whatever_the_frame_rate(frame_interval_ms):
    # A per-frame velocity would come out 5x smaller at 25 fps than at 5 fps.
    mean = _track(frame_interval_ms, duration_ms=4000, velocity_per_s=0.1)
    assert mean[4] == pytest.approx(0.1, rel=0.05)


def test_prediction_moves_by_velocity_times_dt():
    mean = np.array([[0.5, 0.5, 0.1, 0.2, 0.3, -0.1, 0.0, 0.0]])
    new_mean, _ = kalman.predict(mean, _blocks(1e-4), 0.5, NOISE)
    np.testing.assert_allclose(new_mean[0, :2], [0.65, 0.45])


def test_uncertainty_grows_with_dt_and_not_at_all_for_zero_dt():
    mean, cov = kalman.initiate(np.array([[0.5, 0.5, 0.1, 0.2]]), NOISE)
    _, cov_zero = kalman.predict(mean, cov, 0.0, NOISE)
    _, cov_short = kalman.predict(mean, cov, 0.04, NOISE)
    _, cov_long = kalman.predict(mean, cov, 1.0, NOISE)
    np.testing.assert_array_equal(cov_zero, cov)
    variances = [0, 2]  # of the components and of their velocities
    assert (cov_long[0, variances] > cov_short[0, variances]).all()
    assert (cov_short[0, variances] > cov[0, variances]).all()


def test_negative_dt_is_treated_as_no_time():
    mean = np.array([[0.5, 0.5, 0.1, 0.2, 0.3, 0.0, 0.0, 0.0]])
    cov = _blocks(1e-4)
    new_mean, new_cov = kalman.predict(mean, cov, -1.0, NOISE)
    np.testing.assert_array_equal(new_mean, mean)
    np.testing.assert_array_equal(new_cov, cov)


def test_update_moves_towards_measurement_and_shrinks_uncertainty():
    mean, cov = kalman.initiate(np.array([[0.5, 0.5, 0.1, 0.2]]), NOISE)
    mean, cov = kalman.predict(mean, cov, 0.1, NOISE)
    new_mean, new_cov = kalman.update(mean, cov, np.array([[0.52, 0.5, 0.1, 0.2]]), NOISE)
    assert 0.5 < new_mean[0, 0] < 0.52
    assert new_cov[0, 0, 0] < cov[0, 0, 0]  # the variance of x
    assert (new_cov[0, [0, 2]] > 0).all()


def test_vectorised_rows_are_independent_and_inputs_untouched():
    measured = np.array([[0.2, 0.2, 0.05, 0.1], [0.7, 0.6, 0.1, 0.3]])
    mean, cov = kalman.initiate(measured, NOISE)
    mean_before, cov_before = mean.copy(), cov.copy()
    both, _ = kalman.update(*kalman.predict(mean, cov, 0.2, NOISE), measured + 0.01, NOISE)
    only_second, _ = kalman.update(*kalman.predict(mean[1:], cov[1:], 0.2, NOISE), measured[1:] + 0.01, NOISE)
    np.testing.assert_allclose(both[1], only_second[0])
    np.testing.assert_array_equal(mean, mean_before)
    np.testing.assert_array_equal(cov, cov_before)


def test_blocks_give_the_textbook_filter_on_full_matrices():
    """The element-wise filter against ``F P F^T + Q`` and ``K = P H^T (H P H^T + R)^-1``."""
    rng = np.random.default_rng(3)
    measured = np.abs(rng.normal(0.3, 0.1, (5, 4))) + 0.01
    mean, cov = kalman.initiate(measured, NOISE)
    h = np.hstack([np.eye(4), np.zeros((4, 4))])
    for step in range(30):  # irregular steps, noisy measurements, some frames without one
        dt = rng.uniform(0.0, 0.5)
        scale = np.hstack([np.maximum(mean[:, 2:4], 1e-6)] * 2)
        f = np.eye(8)
        f[:4, 4:] = dt * np.eye(4)
        q = np.concatenate([(NOISE.position_per_s * scale) ** 2, (NOISE.velocity_per_s * scale) ** 2], axis=1) * dt
        expected_cov = f @ full_covariance(cov) @ f.T + np.stack([np.diag(row) for row in q])
        mean, cov = kalman.predict(mean, cov, dt, NOISE)
        np.testing.assert_allclose(full_covariance(cov), expected_cov, rtol=1e-12, atol=1e-15)
        if step % 4:
            z = measured + rng.normal(0, 0.01, measured.shape)
            p = full_covariance(cov)
            r = np.stack([np.diag(row) for row in (NOISE.measurement * np.maximum(mean[:, [2, 3, 2, 3]], 1e-6)) ** 2])
            k = p @ h.T @ np.linalg.inv(h @ p @ h.T + r)
            expected_mean = mean + np.einsum("nij,nj->ni", k, z - mean[:, :4])
            expected_cov = (np.eye(8) - k @ h) @ p
            mean, cov = kalman.update(mean, cov, z, NOISE)
            np.testing.assert_allclose(mean, expected_mean, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(full_covariance(cov), expected_cov, rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(kalman.cov_blocks(full_covariance(cov)), cov)
