"""Configuration: one YAML file, validated on load, with env overrides for connections.

Parsed once at start-up and passed down (never read env deep inside the code). A bad
value raises ``ConfigError`` naming the file, the key path and what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from pipeline.exceptions import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The folder with sample clips and models: ``$CAMCOUNT_SHARED`` or ``<repo>/../shared``."""
    return Path(os.environ.get("CAMCOUNT_SHARED", REPO_ROOT.parent / "shared")).resolve()


class Section(BaseModel):
    """Base of every config section: frozen, and unknown keys are errors (typos fail loudly)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaConfig(Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    client_id: str = "camcount"
    #: How soon a consumer that died (kill -9, lost host) is declared gone and its partitions
    #: move to the rest of its group (librdkafka's default is 45 s). librdkafka heartbeats
    #: from its own thread, so a worker busy in Python is not taken for dead; lower recovers
    #: faster, but a network stall longer than this causes a rebalance. Workers built on
    #: confluent-kafka (infer, sink); the faust apps have their own (e.g. aggregation).
    session_timeout_ms: int = Field(10_000, ge=6_000, le=300_000)
    #: Extra librdkafka settings passed through unchanged (e.g. ``ssl.endpoint.identification.algorithm``).
    extra: dict[str, str | int | bool] = Field(default_factory=dict)


class TopicsConfig(Section):
    #: Prefix for every topic name, so several deployments (or tests) share one cluster.
    prefix: str = ""
    partitions: int = Field(4, ge=1)
    replication_factor: int = Field(1, ge=1)
    retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=-1)
    dlq_retention_ms: int = Field(30 * 24 * 3600 * 1000, ge=-1)
    #: Largest message the broker accepts; a JPEG frame must fit.
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024)


class ClickHouseConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(9000, ge=1, le=65535)
    #: A plain identifier: it is spliced into SQL as a name (values are always parameters).
    database: str = Field("camcount", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    user: str = "default"
    password: SecretStr = SecretStr("")
    secure: bool = False
    verify: bool = True
    ca_certs: str | None = None
    connect_timeout_s: float = Field(5.0, gt=0)


class TelemetryConfig(Section):
    service_name: str = "camcount"
    #: OTLP endpoint (``http://host:4318``); unset means no export.
    otlp_endpoint: str | None = None
    console: bool = False
    metrics_interval_ms: int = Field(10_000, ge=100)
    #: Address of each worker's health endpoint (``/livez``, ``/readyz``, ``/metrics``).
    health_host: str = "127.0.0.1"
    #: Port of the health endpoint; unset means none, 0 any free port (logged at start).
    #: ``--health-port`` on a worker command overrides it.
    health_port: int | None = Field(None, ge=0, le=65535)


class ModelsConfig(Section):
    #: Registry file; relative paths are relative to the repository root.
    registry: Path = Path("models/registry.yaml")
    #: Where model files live; unset means ``$CAMCOUNT_MODELS_DIR`` or ``<shared>/models``.
    dir: Path | None = None
    #: ``name:version`` served as primary until the model-control topic says otherwise.
    primary: str = "yolox-nano:1"

    @field_validator("primary")
    @classmethod
    def _name_and_version(cls, value: str) -> str:
        name, sep, version = value.partition(":")
        if not (sep and name and version):
            raise ValueError(f"must be NAME:VERSION (e.g. yolox-nano:1), got {value!r}")
        return value


Point = tuple[float, float]


class LineRuleConfig(Section):
    type: Literal["line"] = "line"
    name: str = Field(min_length=1)
    #: Directed segment ``[[x1, y1], [x2, y2]]``: ``in`` is a crossing from its left to its right.
    points: tuple[Point, Point]
    classes: list[str] | None = None
    anchor: Literal["bottom_center", "center", "top_center"] = "bottom_center"
    min_frames: int = Field(2, ge=1)


class ZoneRuleConfig(Section):
    type: Literal["zone"] = "zone"
    name: str = Field(min_length=1)
    polygon: list[Point] = Field(min_length=3)
    classes: list[str] | None = None
    anchor: Literal["bottom_center", "center", "top_center"] = "bottom_center"
    min_frames: int = Field(2, ge=1)


class CameraConfig(Section):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    #: A file path, ``rtsp://``, ``http(s)://`` (HLS) URL.
    source: str
    #: Target frame rate after sampling by presentation time.
    fps: float = Field(10.0, gt=0, le=120)
    #: Downscale so the frame is at most this wide (keeps aspect); unset keeps the size.
    max_width: int | None = Field(None, ge=32)
    #: Loop a file source forever (demos); ignored for live sources.
    loop: bool = False
    #: Source resolution ``[width, height]`` the rule coordinates are in, when in pixels.
    resolution: tuple[int, int] | None = None
    rules: list[Annotated[LineRuleConfig | ZoneRuleConfig, Field(discriminator="type")]] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _pixels_need_resolution(self) -> "CameraConfig":
        for i, rule in enumerate(self.rules):
            pts = rule.points if isinstance(rule, LineRuleConfig) else rule.polygon
            if any(v > 1.0 for p in pts for v in p) and self.resolution is None:
                raise ValueError(
                    f"rules[{i}] ({rule.name}) uses pixel coordinates: set 'resolution: [width, height]'"
                    " on the camera, or give coordinates normalised to 0..1"
                )
            if any(v < 0 for p in pts for v in p):
                raise ValueError(f"rules[{i}] ({rule.name}) has a negative coordinate")
        return self


# Sections owned by parts of the pipeline subclass ``Section``, so they are imported here,
# after it is defined.
from pipeline.aggregation.config import AggregationConfig  # noqa: E402
from pipeline.sinks.config import SinkConfig  # noqa: E402
from pipeline.ingest.config import IngestConfig  # noqa: E402
from pipeline.counting.config import CountingConfig  # noqa: E402
from pipeline.inference.config import InferenceConfig  # noqa: E402
from pipeline.serving.config import ServingConfig  # noqa: E402
from pipeline.alerts.config import AlertsConfig  # noqa: E402


class Settings(Section):
    """The whole configuration file."""

    kafka: KafkaConfig = KafkaConfig()
    topics: TopicsConfig = TopicsConfig()
    clickhouse: ClickHouseConfig = ClickHouseConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    models: ModelsConfig = ModelsConfig()
    aggregation: AggregationConfig = AggregationConfig()
    sink: SinkConfig = SinkConfig()
    ingest: IngestConfig = IngestConfig()
    counting: CountingConfig = CountingConfig()
    inference: InferenceConfig = InferenceConfig()
    serving: ServingConfig = ServingConfig()
    alerts: AlertsConfig = AlertsConfig()
    cameras: list[CameraConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_camera_ids(self) -> "Settings":
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate camera ids: {', '.join(dupes)}")
        return self

    def camera(self, camera_id: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise ConfigError(f"no camera {camera_id!r} in the config")


#: Environment variables that override connection settings (12-factor), by dotted key.
ENV_OVERRIDES: dict[str, str] = {
    "CAMCOUNT_KAFKA_BOOTSTRAP_SERVERS": "kafka.bootstrap_servers",
    "CAMCOUNT_KAFKA_SECURITY_PROTOCOL": "kafka.security_protocol",
    "CAMCOUNT_KAFKA_SASL_MECHANISM": "kafka.sasl_mechanism",
    "CAMCOUNT_KAFKA_SASL_USERNAME": "kafka.sasl_username",
    "CAMCOUNT_KAFKA_SASL_PASSWORD": "kafka.sasl_password",
    "CAMCOUNT_KAFKA_SSL_CA_LOCATION": "kafka.ssl_ca_location",
    "CAMCOUNT_TOPIC_PREFIX": "topics.prefix",
    "CAMCOUNT_CLICKHOUSE_HOST": "clickhouse.host",
    "CAMCOUNT_CLICKHOUSE_PORT": "clickhouse.port",
    "CAMCOUNT_CLICKHOUSE_DATABASE": "clickhouse.database",
    "CAMCOUNT_CLICKHOUSE_USER": "clickhouse.user",
    "CAMCOUNT_CLICKHOUSE_PASSWORD": "clickhouse.password",
    "CAMCOUNT_CLICKHOUSE_SECURE": "clickhouse.secure",
    "CAMCOUNT_OTLP_ENDPOINT": "telemetry.otlp_endpoint",
}


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for var, dotted in ENV_OVERRIDES.items():
        if var in environ:
            section, key = dotted.split(".")
            node = raw.setdefault(section, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{section}: expected a mapping, got {type(node).__name__}")
            node[key] = environ[var]
    return raw


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("line", "zone") and out.endswith("]"):
            continue  # pydantic's union tag adds the member name; the user never wrote it
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (misspelt, or not valid in this section)"
    return error["msg"]


def parse_settings(raw: Any, source: str = "<config>", environ: Mapping[str, str] | None = None) -> Settings:
    """Validate an already-parsed YAML document (plus env overrides) into ``Settings``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = _apply_env(dict(raw), os.environ if environ is None else environ)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{source}: {_format_loc(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise ConfigError("invalid configuration\n  " + "\n  ".join(problems)) from None


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load and validate a YAML config file; ``None`` gives the defaults (plus env)."""
    if path is None:
        return parse_settings({}, "<defaults>", environ)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_settings(raw, str(path), environ)
