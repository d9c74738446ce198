"""The model registry: which model versions exist and how each must be fed and read.

``models/registry.yaml`` is the contract between a model file and the code that
runs it. Loading refuses anything that breaks it: an unknown key, a file whose
sha256 differs from the entry, or an ONNX graph whose inputs and outputs differ
from the declared spec. A wrong model is worse than no model: it would count
silently wrong.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Mapping, Sequence, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from pipeline.exceptions import ConfigError, ModelIntegrityError

if TYPE_CHECKING:
    from pipeline.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REGISTRY_PATH = REPO_ROOT / "models" / "registry.yaml"
MODELS_DIR_ENV = "CAMCOUNT_MODELS_DIR"
SHARED_ENV = "CAMCOUNT_SHARED"
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)


class LetterboxSpec(_Spec):
    """Resize keeping aspect ratio, paste at ``align`` on a ``pad_value`` canvas."""

    align: Literal["top-left"] = "top-left"
    pad_value: int = Field(114, ge=0, le=255)
    interpolation: Literal["linear"] = "linear"


class InputSpec(_Spec):
    name: str
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    layout: Literal["NCHW"] = "NCHW"
    colour: Literal["BGR", "RGB"] = "BGR"
    dtype: Literal["float32"] = "float32"
    normalisation: Literal["none", "unit"] = Field(
        "none", description="none: raw 0..255; unit: divided by 255"
    )
    letterbox: LetterboxSpec = LetterboxSpec()
    dynamic_batch: bool


class DecoderSpec(_Spec):
    name: Literal["yolox"]
    strides: tuple[int, ...] = (8, 16, 32)


class OutputSpec(_Spec):
    name: str
    shape: tuple[Union[Literal["batch"], int], ...]
    decoder: DecoderSpec


class ClassesSpec(_Spec):
    """Class names, inline or in a file (line i = class id i)."""

    names: tuple[str, ...] | None = None
    file: str | None = None
    sha256: Sha256Hex | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "ClassesSpec":
        if (self.names is None) == (self.file is None):
            raise ValueError("give exactly one of 'names' or 'file'")
        return self


class ConvertSpec(_Spec):
    """A deterministic recipe turning the downloaded source into ``file``."""

    recipe: Literal["yolox_dynamic_batch"]
    doc_string: str = ""
    metadata: dict[str, str] = {}


class SourceSpec(_Spec):
    """Where users without a local models directory download the model from."""

    url: str
    sha256: Sha256Hex
    convert: ConvertSpec | None = None


class ModelSpec(_Spec):
    """One model version: its file, checksum, input contract and output decoder."""

    name: str
    version: str
    file: str
    sha256: Sha256Hex
    input: InputSpec
    output: OutputSpec
    classes: ClassesSpec
    nms_groups: dict[str, tuple[str, ...]] = {}
    licence: str | None = None
    source: SourceSpec | None = None

    @model_validator(mode="after")
    def _batch_dim_agrees(self) -> "ModelSpec":
        expected = "batch" if self.input.dynamic_batch else 1
        if not self.output.shape or self.output.shape[0] != expected:
            raise ValueError(f"output.shape[0] must be {expected!r} for this input")
        return self

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"


class RegistryFile(_Spec):
    schema_version: Literal[1]
    models: tuple[ModelSpec, ...]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_validation_error(source: str, error: ValidationError) -> str:
    """One line per problem, each naming the dotted key, e.g. ``models.0.sha256``."""
    lines = [f"{source}: invalid"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(root)"
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def default_models_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$CAMCOUNT_MODELS_DIR``, else ``$CAMCOUNT_SHARED/models``, else
    ``<repo>/../shared/models``: the same default as the config's ``models.dir``."""
    env = os.environ if environ is None else environ
    if env.get(MODELS_DIR_ENV):
        return Path(env[MODELS_DIR_ENV]).expanduser()
    if env.get(SHARED_ENV):
        return Path(env[SHARED_ENV]).expanduser() / "models"
    return REPO_ROOT.parent / "shared" / "models"


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where ``fetch`` stores downloaded models: ``$XDG_CACHE_HOME/camcount/models``."""
    env = os.environ if environ is None else environ
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "camcount" / "models"


def load_registry_file(path: Path) -> RegistryFile:
    """Parse and validate a registry YAML; every error names the file and key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read model registry: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        parsed = RegistryFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from exc
    seen: set[str] = set()
    for index, spec in enumerate(parsed.models):
        if spec.key in seen:
            raise ConfigError(f"{path}: models.{index}: duplicate version {spec.key}")
        seen.add(spec.key)
    return parsed


class ModelRegistry:
    """Model versions from a registry file, with their files resolved and verified.

    A relative ``file`` is looked up in ``models_dir`` and then in
    ``cache_dir/<name>/<version>/`` (where ``fetch`` puts downloads); an
    absolute ``file`` is used as is, so a registry may point outside the repo.
    """

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        models_dir: Path,
        cache_dir: Path | None = None,
        source: str = "<registry>",
    ) -> None:
        self._specs = {spec.key: spec for spec in specs}
        self.models_dir = Path(models_dir)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.source = source

    @classmethod
    def load(
        cls,
        path: Path | str | None = None,
        models_dir: Path | str | None = None,
        cache_dir: Path | str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> "ModelRegistry":
        """Load ``path`` (default ``models/registry.yaml``); argument > env > default dirs."""
        registry_path = Path(path) if path is not None else DEFAULT_REGISTRY_PATH
        parsed = load_registry_file(registry_path)
        models = Path(models_dir) if models_dir is not None else default_models_dir(environ)
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(environ)
        return cls(parsed.models, models, cache, source=str(registry_path))

    def keys(self) -> list[str]:
        return sorted(self._specs)

    def get(self, name: str, version: str) -> ModelSpec:
        try:
            return self._specs[f"{name}:{version}"]
        except KeyError:
            known = ", ".join(self.keys()) or "none"
            raise ConfigError(
                f"{self.source}: no model version {name}:{version} (known: {known})"
            ) from None

    def candidate_paths(self, spec: ModelSpec, file: str | None = None) -> list[Path]:
        """Where ``file`` (default the model file) may be, in lookup order."""
        relative = Path(file or spec.file)
        if relative.is_absolute():
            return [relative]
        paths = [self.models_dir / relative]
        if self.cache_dir is not None:
            paths.append(self.cache_dir / spec.name / spec.version / relative.name)
        return paths

    def resolve_file(self, spec: ModelSpec, file: str | None = None) -> Path:
        """The first existing candidate path; a clear error naming all tried."""
        paths = self.candidate_paths(spec, file)
        for candidate in paths:
            if candidate.is_file():
                return candidate
        tried = ", ".join(str(p) for p in paths)
        hint = " (or fetch it: pipeline.inference.fetch)" if spec.source else ""
        raise ModelIntegrityError(
            f"model {spec.key}: file {file or spec.file} not found; tried {tried}{hint}"
        )

    def read_verified(self, spec: ModelSpec) -> bytes:
        """The model file's bytes, refused unless their sha256 matches the entry.

        The session is built from these same bytes, so the file checked is the
        file loaded even if it is replaced meanwhile.
        """
        path = self.resolve_file(spec)
        return verify_sha256(path, path.read_bytes(), spec.sha256)

    def class_names(self, spec: ModelSpec) -> tuple[str, ...]:
        """Class names by id, from the inline list or the (checksummed) file."""
        classes = spec.classes
        if classes.names is not None:
            names = classes.names
        else:
            path = self.resolve_file(spec, classes.file)
            data = path.read_bytes()
            if classes.sha256 is not None:
                verify_sha256(path, data, classes.sha256)
            names = tuple(line.strip() for line in data.decode("utf-8").splitlines())
            names = tuple(name for name in names if name)
        unknown = {n for group in spec.nms_groups.values() for n in group} - set(names)
        if unknown:
            raise ConfigError(
                f"{self.source}: {spec.key}: nms_groups name unknown classes {sorted(unknown)}"
            )
        return names


def verify_sha256(path: Path, data: bytes, expected: str) -> bytes:
    """Return ``data`` if its sha256 is ``expected``, else refuse naming both."""
    actual = sha256_hex(data)
    if actual != expected:
        raise ModelIntegrityError(
            f"{path}: sha256 mismatch: expected {expected}, actual {actual}; "
            "refusing to load a file that differs from its registry entry"
        )
    return data


def _dims_match(actual: Sequence[object], expected: Sequence[object]) -> bool:
    """Shape equality where ``"batch"`` matches only a symbolic (non-int) dim."""
    if len(actual) != len(expected):
        return False
    for got, want in zip(actual, expected):
        if want == "batch":
            if isinstance(got, int):
                return False
        elif got != want:
            return False
    return True


def expected_input_shape(spec: ModelSpec) -> tuple[object, ...]:
    batch: object = "batch" if spec.input.dynamic_batch else 1
    return (batch, 3, spec.input.height, spec.input.width)


def verify_session_io(session: object, spec: ModelSpec) -> None:
    """Refuse an ONNX session whose inputs or outputs differ from ``spec``.

    ``session`` is an ``onnxruntime.InferenceSession`` (anything with
    ``get_inputs``/``get_outputs`` returning objects with name, shape, type).
    """
    inputs = list(session.get_inputs())  # type: ignore[attr-defined]
    outputs = {o.name: o for o in session.get_outputs()}  # type: ignore[attr-defined]
    want_in = expected_input_shape(spec)
    if len(inputs) != 1 or inputs[0].name != spec.input.name:
        names = [i.name for i in inputs]
        raise ModelIntegrityError(
            f"model {spec.key}: inputs {names} do not match spec input {spec.input.name!r}"
        )
    if not _dims_match(inputs[0].shape, want_in) or inputs[0].type != "tensor(float)":
        raise ModelIntegrityError(
            f"model {spec.key}: input {spec.input.name!r} is {inputs[0].type} "
            f"{inputs[0].shape}, spec says tensor(float) {list(want_in)}"
        )
    out = outputs.get(spec.output.name)
    if out is None:
        raise ModelIntegrityError(
            f"model {spec.key}: no output {spec.output.name!r} (has {sorted(outputs)})"
        )
    if not _dims_match(out.shape, spec.output.shape) or out.type != "tensor(float)":
        raise ModelIntegrityError(
            f"model {spec.key}: output {out.name!r} is {out.type} {out.shape}, "
            f"spec says tensor(float) {list(spec.output.shape)}"
        )


def registry_from_settings(settings: "Settings") -> ModelRegistry:
    """The registry the ``models`` config section names (relative paths from the repo root)."""
    from pipeline.config import REPO_ROOT

    path = settings.models.registry
    return ModelRegistry.load(path if path.is_absolute() else REPO_ROOT / path, settings.models.dir)
