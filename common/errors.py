"""Error types that carry their retry policy.

Callers retry only what says it is retryable (with bounded backoff); everything else is reported once and the
work item is dead-lettered or refused.
"""

from __future__ import annotations


class FeqaError(Exception):
    """Base of every error raised by feqa code."""

    retryable: bool = False


class RetryableError(FeqaError):
    """A transient failure: the same call may succeed later (network, Redis restarting, busy device)."""

    retryable = True


class PermanentError(FeqaError):
    """A failure that repeating the call cannot fix (bad input, wrong version, missing file)."""

    retryable = False


class DecodeError(PermanentError):
    """A stored or received message cannot be decoded: missing field, truncated array, bad JSON."""


class SchemaVersionError(DecodeError):
    """A message carries a schema version this code does not know."""


class BusUnavailable(RetryableError):
    """Redis could not be reached within the bounded reconnect budget."""


class ConfigError(PermanentError):
    """A setting or file the operator provides is missing or wrong; the message says what to do."""


class ModelError(PermanentError):
    """A model file is missing, corrupt, or does not match what its manifest promises."""
