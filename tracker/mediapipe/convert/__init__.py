"""Our own TFLite -> ONNX converter for the MediaPipe face models (see :mod:`.ops` for the operator mappings)."""

CONVERTER_VERSION = 1
"""Bumped whenever the converter's output for the same TFLite file can change (part of the fetch record)."""
