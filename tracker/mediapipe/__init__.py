"""The default landmarker: MediaPipe's BlazeFace, Face Mesh and iris models, converted to ONNX and run on ONNX Runtime.

Modules: :mod:`.models` (pinned sources, checked loading), :mod:`.fetch` (``feqa tracker fetch-models``),
:mod:`.convert` (our TFLite -> ONNX converter), :mod:`.runners` (ONNX Runtime, LiteRT), :mod:`.anchors`,
:mod:`.blazeface`, :mod:`.roi`, :mod:`.facemesh`, :mod:`.iris`, :mod:`.table` (mesh -> 106 points),
:mod:`.filter` (One Euro), :mod:`.landmarker` (the ``Landmarker`` implementation).
"""
