"""onnxruntime session factory: one code path for TensorRT, CUDA and CPU.

Provider choice follows what this onnxruntime build offers
(``onnxruntime-gpu`` lists TensorRT/CUDA) and what actually initialised: a
GPU provider that cannot start (no GPU, missing CUDA libraries) makes
onnxruntime run on CPU, and we log that fallback instead of hiding it.
"""

from __future__ import annotations

import logging
from typing import Literal, Sequence

import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field

from pipeline.exceptions import ConfigError

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
ProviderEntry = tuple[str, dict[str, str]]

_GRAPH_OPT = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class SessionSettings(BaseModel):
    """How to run a model: providers and CPU threading."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    providers: Literal["auto", "tensorrt", "cuda", "cpu"] = "auto"
    fallback_to_cpu: bool = Field(
        True,
        description="If an explicitly requested GPU provider is unavailable, run "
        "on CPU with a warning (True) or refuse to start (False). 'auto' always "
        "falls back.",
    )
    device_id: int = Field(0, ge=0)
    intra_op_num_threads: int = Field(
        0,
        ge=0,
        description="Threads inside one operator; 0 = one per core. Fewer leaves "
        "cores for letterboxing and Kafka; more speeds a compute-bound model.",
    )
    inter_op_num_threads: int = Field(0, ge=0, description="0 = onnxruntime default")
    allow_spinning: bool = Field(
        True,
        description="Idle intra-op threads spin: lower latency per batch, but they "
        "burn CPU that other stages on the same cores could use.",
    )
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    trt_engine_cache_dir: str | None = Field(
        None, description="Where TensorRT caches built engines (slow to build)."
    )


def choose_providers(
    settings: SessionSettings, available: Sequence[str]
) -> list[str | ProviderEntry]:
    """Ordered provider list for onnxruntime, always ending with CPU.

    ``auto`` takes TensorRT, then CUDA, when this build offers them; an
    explicit GPU choice this build lacks falls back to CPU with a warning, or
    raises ``ConfigError`` when ``fallback_to_cpu`` is off.
    """
    wanted = {
        "auto": [TENSORRT, CUDA],
        "tensorrt": [TENSORRT, CUDA],
        "cuda": [CUDA],
        "cpu": [],
    }[settings.providers]
    chosen: list[str | ProviderEntry] = []
    for name in wanted:
        if name in available:
            chosen.append((name, _provider_options(name, settings)))
    if settings.providers in ("tensorrt", "cuda") and not chosen:
        _fallback(settings, f"onnxruntime offers {list(available)}")
    chosen.append(CPU)
    return chosen


def _provider_options(name: str, settings: SessionSettings) -> dict[str, str]:
    options = {"device_id": str(settings.device_id)}
    if name == TENSORRT and settings.trt_engine_cache_dir:
        options["trt_engine_cache_enable"] = "True"
        options["trt_engine_cache_path"] = settings.trt_engine_cache_dir
    return options


def _fallback(settings: SessionSettings, why: str) -> None:
    message = f"execution provider {settings.providers!r} unavailable ({why})"
    if settings.providers != "auto" and not settings.fallback_to_cpu:
        raise ConfigError(f"inference.session.providers: {message}")
    log.warning("%s; running on CPU", message)


def session_options(settings: SessionSettings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_num_threads
    options.inter_op_num_threads = settings.inter_op_num_threads
    options.graph_optimization_level = _GRAPH_OPT[settings.graph_optimization]
    spinning = "1" if settings.allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    return options


def create_session(model: bytes, settings: SessionSettings) -> ort.InferenceSession:
    """Build a session from verified model bytes; logs which provider runs it."""
    providers = choose_providers(settings, ort.get_available_providers())
    session = ort.InferenceSession(
        model, sess_options=session_options(settings), providers=providers
    )
    active = session.get_providers()
    first_wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if first_wanted not in active:
        _fallback(settings, f"{first_wanted} did not initialise; active {active}")
    log.info("onnxruntime session on %s", active[0])
    return session
