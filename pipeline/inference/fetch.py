"""Get a registered model for users without a local models directory.

Downloads the entry's public ``source.url``, checks the source sha256, applies
the entry's deterministic conversion recipe and checks the result against the
registry sha256, so a fetched file is byte-identical to the one the registry
was written for. Nothing downloads at run time: an operator runs this once.
"""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

from pipeline.exceptions import ConfigError, ModelIntegrityError
from pipeline.inference.registry import ConvertSpec, ModelSpec, sha256_hex

log = logging.getLogger(__name__)

MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 60.0


def convert_yolox_dynamic_batch(source: bytes, convert: ConvertSpec) -> bytes:
    """Make a batch-1 YOLOX export accept any batch size (needs the ``onnx`` package).

    Per shared/models/PROVENANCE.md: the Reshape shape initializers
    ``[1, 85, -1]`` become ``[0, 85, -1]`` (0 copies the input's dim), dim 0 of
    every graph input and output becomes ``batch``, the stale static
    ``value_info`` is dropped, and a doc_string and metadata saying the file is
    modified are added (Apache-2.0 section 4(b)).
    """
    try:
        import numpy as np
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise ConfigError(
            "converting the downloaded model needs the 'onnx' package "
            "(pip install 'camcount[dev]' or pip install onnx)"
        ) from exc
    model = onnx.load_from_string(source)
    initializers = {init.name: init for init in model.graph.initializer}
    changed = 0
    for node in model.graph.node:
        init = initializers.get(node.input[1]) if node.op_type == "Reshape" else None
        if init is not None and numpy_helper.to_array(init).tolist() == [1, 85, -1]:
            fixed = np.array([0, 85, -1], np.int64)
            init.CopyFrom(numpy_helper.from_array(fixed, init.name))
            changed += 1
    if changed == 0:
        raise ModelIntegrityError("no Reshape [1, 85, -1] found: not a YOLOX export")
    for value in list(model.graph.input) + list(model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "batch"
    del model.graph.value_info[:]
    model.doc_string = convert.doc_string
    for key, value in convert.metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


RECIPES: dict[str, Callable[[bytes, ConvertSpec], bytes]] = {
    "yolox_dynamic_batch": convert_yolox_dynamic_batch,
}


def download(url: str, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """The body at ``url`` (``https://`` or ``file://``), at most 512 MiB."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
        data = response.read(MAX_DOWNLOAD_BYTES + 1)
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ModelIntegrityError(f"{url}: larger than {MAX_DOWNLOAD_BYTES} bytes")
    return data


def build_model_bytes(spec: ModelSpec, source: bytes) -> bytes:
    """Check the downloaded source and turn it into the registered file's bytes."""
    if spec.source is None:
        raise ConfigError(f"model {spec.key} has no 'source' to fetch from")
    actual = sha256_hex(source)
    if actual != spec.source.sha256:
        raise ModelIntegrityError(
            f"{spec.source.url}: sha256 mismatch: expected {spec.source.sha256}, "
            f"actual {actual}"
        )
    convert = spec.source.convert
    result = source if convert is None else RECIPES[convert.recipe](source, convert)
    actual = sha256_hex(result)
    if actual != spec.sha256:
        raise ModelIntegrityError(
            f"model {spec.key}: converted file sha256 mismatch: expected {spec.sha256}, "
            f"actual {actual} (the recipe was verified with onnx 1.23.2)"
        )
    return result


def fetch_model(
    spec: ModelSpec,
    cache_dir: Path,
    downloader: Callable[[str], bytes] = download,
) -> Path:
    """Put the model file at ``cache_dir/<name>/<version>/<file>`` and return its path.

    A cached file with the right sha256 is reused; otherwise the source is
    downloaded, checked and converted, and written atomically (temp + rename)
    so a crash never leaves a half-written model behind.
    """
    if spec.source is None:
        raise ConfigError(f"model {spec.key} has no 'source' to fetch from")
    target = Path(cache_dir) / spec.name / spec.version / Path(spec.file).name
    if target.is_file() and sha256_hex(target.read_bytes()) == spec.sha256:
        return target
    log.info("fetching model %s from %s", spec.key, spec.source.url)
    data = build_model_bytes(spec, downloader(spec.source.url))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("model %s stored at %s", spec.key, target)
    return target
