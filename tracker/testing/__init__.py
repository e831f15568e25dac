"""Test instruments for the tracker: random-weight ONNX models with insightface's real shapes, and a pixel-blob
landmarker for tracking tests. Models are generated at run time, never committed."""
