"""Execution-provider choice and CPU threading settings."""

from __future__ import annotations

import logging

import pytest

from pipeline.exceptions import ConfigError
from pipeline.inference.session import (
    CPU,
    CUDA,
    TENSORRT,
    SessionSettings,
    choose_providers,
    create_session,
    session_options,
)

GPU_BUILD = [TENSORRT, CUDA, CPU]
CPU_BUILD = ["AzureExecutionProvider", CPU]


def names(providers) -> list[str]:
    return [p if isinstance(p, str) else p[0] for p in providers]


@pytest.mark.parametrize(
    "requested, available, expected",
    [
        ("auto", GPU_BUILD, [TENSORRT, CUDA, CPU]),  # onnxruntime-gpu with TensorRT
        ("auto", [CUDA, CPU], [CUDA, CPU]),  # onnxruntime-gpu without TensorRT
        ("auto", CPU_BUILD, [CPU]),  # plain onnxruntime
        ("tensorrt", GPU_BUILD, [TENSORRT, CUDA, CPU]),
        ("cuda", GPU_BUILD, [CUDA, CPU]),  # TensorRT skipped when CUDA asked for
        ("cpu", GPU_BUILD, [CPU]),  # CPU even on a GPU build
    ],
)
def test_choose_providers(requested, available, expected):
    chosen = choose_providers(SessionSettings(providers=requested), available)
    assert names(chosen) == expected


def test_gpu_options_carry_device_and_engine_cache():
    settings = SessionSettings(device_id=1, trt_engine_cache_dir="/tmp/trt")
    trt, cuda, _ = choose_providers(settings, GPU_BUILD)
    assert trt[1]["device_id"] == "1" and trt[1]["trt_engine_cache_path"] == "/tmp/trt"
    assert cuda == (CUDA, {"device_id": "1"})


def test_missing_gpu_provider_falls_back_to_cpu_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.inference.session"):
        chosen = choose_providers(SessionSettings(providers="cuda"), CPU_BUILD)
    assert names(chosen) == [CPU]
    assert "'cuda' unavailable" in caplog.text and "running on CPU" in caplog.text


def test_missing_gpu_provider_refused_without_fallback():
    settings = SessionSettings(providers="tensorrt", fallback_to_cpu=False)
    with pytest.raises(ConfigError, match="'tensorrt' unavailable"):
        choose_providers(settings, CPU_BUILD)


def test_session_options_apply_threading():
    options = session_options(
        SessionSettings(intra_op_num_threads=2, inter_op_num_threads=1, allow_spinning=False)
    )
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_unknown_provider_is_a_validation_error():
    with pytest.raises(ValueError, match="providers"):
        SessionSettings(providers="rocm")


def test_cpu_session_from_model_bytes(models_dir):
    data = (models_dir / "yolox_nano_dynbatch.onnx").read_bytes()
    session = create_session(data, SessionSettings(providers="auto", intra_op_num_threads=1))
    assert session.get_providers()[-1] == CPU
    assert session.get_inputs()[0].name == "images"


@pytest.mark.parametrize(
    "runs, threads, expected",
    [
        (2, 0, "cores // 2"),  # auto: the runs share the cores
        (1, 0, 0),  # one run: onnxruntime's default (a thread per core)
        (2, 3, 3),  # set explicitly: kept
    ],
)
def test_worker_session_shares_the_cores_between_model_runs(runs, threads, expected) -> None:
    import os

    from pipeline.inference.config import InferenceConfig

    cfg = InferenceConfig(model_runs=runs, session={"intra_op_num_threads": threads})
    if expected == "cores // 2":
        expected = max(1, len(os.sched_getaffinity(0)) // 2)
    assert cfg.worker_session.intra_op_num_threads == expected
    assert cfg.session.intra_op_num_threads == threads  # camcount serve keeps the configured value
