"""One error hierarchy, so callers can catch camcount failures apart from library ones.

Each subclass says what the caller should do: a ``DecodeError`` message goes to the
dead-letter topic, a ``ConfigError`` stops the process with the bad key named, a
``ModelIntegrityError`` refuses to load the model.
"""

from __future__ import annotations


class CamcountError(Exception):
    """Base class of every error camcount raises on purpose."""


class ConfigError(CamcountError):
    """A configuration file or value is invalid; the message names the file and key."""


class DecodeError(CamcountError):
    """A message could not be decoded (unknown schema, corrupt body, bad image).

    ``reason`` is a short machine-readable tag that goes into the DLQ headers.
    """

    def __init__(self, message: str, reason: str = "decode_error") -> None:
        super().__init__(message)
        self.reason = reason


class UnknownSchemaError(DecodeError):
    """The writer-schema fingerprint of a message is not known to this reader."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="unknown_schema")


class InputLimitError(DecodeError):
    """A message is well-formed but breaks an input limit (bytes, size, boxes)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="input_limit")


class ModelIntegrityError(CamcountError):
    """A model file does not match its registry entry (checksum, inputs, outputs)."""


class ServiceUnavailableError(CamcountError):
    """Kafka or ClickHouse did not answer in time."""


class KafkaAuthenticationError(CamcountError):
    """The broker refused our SASL credentials (or TLS handshake): retrying will not help."""
