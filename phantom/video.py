"""Phantom clips as files: mp4 (H.264 via PyAV) with a ground-truth sidecar, and y4m for Chromium's fake camera.

The sidecar ``<video>.truth.npz`` holds, per written frame: ``index``, ``t``, ``landmarks`` float32 [N, 106, 2]
(image px), ``pose`` [N, 3] (yaw, pitch, roll deg), ``task``, ``rep``, ``phase``, ``severity``, plus ``spec``
(JSON), ``fps``, ``width``, ``height``. :func:`load_truth` reads it back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from phantom.face import Phantom

log = logging.getLogger(__name__)
Progress = Callable[[int], None]


@dataclass(frozen=True)
class TruthTable:
    """Ground truth of the frames of one clip file."""

    spec_json: str
    fps: float
    width: int
    height: int
    index: npt.NDArray[np.int64]
    t: npt.NDArray[np.float64]
    landmarks: npt.NDArray[np.float32]
    pose: npt.NDArray[np.float64]
    task: npt.NDArray[np.str_]
    rep: npt.NDArray[np.int64]
    phase: npt.NDArray[np.str_]
    severity: npt.NDArray[np.float64]


def truth_table(phantom: Phantom, indices: Sequence[int]) -> TruthTable:
    """Collect the truth of ``indices`` into arrays."""
    truths = [phantom.truth(i) for i in indices]
    return TruthTable(
        spec_json=phantom.spec.to_json(),
        fps=phantom.fps,
        width=phantom.width,
        height=phantom.height,
        index=np.array([tr.index for tr in truths], np.int64),
        t=np.array([tr.t for tr in truths], np.float64),
        landmarks=np.stack([tr.landmarks for tr in truths]).astype(np.float32),
        pose=np.array([tr.pose for tr in truths], np.float64).reshape(-1, 3),
        task=np.array([tr.task for tr in truths]),
        rep=np.array([tr.rep for tr in truths], np.int64),
        phase=np.array([tr.phase for tr in truths]),
        severity=np.array([tr.severity for tr in truths], np.float64),
    )


def sidecar_path(video: Path) -> Path:
    return video.with_name(video.name + ".truth.npz")


def save_truth(table: TruthTable, path: Path) -> None:
    np.savez_compressed(
        path,
        spec=np.array(table.spec_json),
        fps=np.array(table.fps),
        width=np.array(table.width),
        height=np.array(table.height),
        index=table.index,
        t=table.t,
        landmarks=table.landmarks,
        pose=table.pose,
        task=table.task,
        rep=table.rep,
        phase=table.phase,
        severity=table.severity,
    )


def load_truth(path: Path) -> TruthTable:
    """Read a sidecar written by :func:`write_video`; raise ValueError when a field is missing."""
    with np.load(path, allow_pickle=False) as z:
        try:
            return TruthTable(
                spec_json=str(z["spec"]),
                fps=float(z["fps"]),
                width=int(z["width"]),
                height=int(z["height"]),
                index=z["index"],
                t=z["t"],
                landmarks=z["landmarks"],
                pose=z["pose"],
                task=z["task"],
                rep=z["rep"],
                phase=z["phase"],
                severity=z["severity"],
            )
        except KeyError as exc:
            raise ValueError(f"{path} is not a phantom truth sidecar: missing {exc}") from exc


ENCODE_BLOCK = 32  # frames rendered before they are handed to the encoder (see _encode)
# libx264's macroblock tree (rate control from the lookahead) does not give one output for one input: encoding the
# same rendered frames in several processes at once gave different files, from the second clip a process wrote on
# (e.g. 6 distinct files in 6 runs; decoding was exact and the frames identical), with one encoder thread as with
# many. So a dataset's videos, their crops and any model trained on them changed from run to run. Without mbtree,
# 25 of 25 such runs wrote the same files (so did asm=0, at a large cost in speed); quality at crf 18 barely moves.
X264_PARAMS = "mbtree=0"


def _frames(phantom: Phantom, start: int, stop: int | None) -> range:
    stop = phantom.n_frames if stop is None else min(stop, phantom.n_frames)
    if not 0 <= start < stop:
        raise ValueError(f"empty frame range [{start}, {stop}) of a {phantom.n_frames}-frame clip")
    return range(start, stop)


def _encode(
    phantom: Phantom,
    path: Path,
    frames: range,
    fmt: str | None,
    codec: str,
    pix_fmt: str,
    progress: Progress | None,
    options: dict[str, str],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(phantom.fps).limit_denominator(1001)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, options=options)
        if not isinstance(stream, av.VideoStream):
            raise TypeError(f"codec {codec} did not give a video stream")
        stream.width, stream.height, stream.pix_fmt = phantom.width, phantom.height, pix_fmt
        # Render a block, then encode it, so the renderer and the encoder's threads take turns on the cores.
        for first in range(0, len(frames), ENCODE_BLOCK):
            block = [phantom.render(i) for i in frames[first : first + ENCODE_BLOCK]]
            for image in block:
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
                if progress is not None:
                    progress(1)
        for packet in stream.encode():
            container.mux(packet)


def write_video(
    phantom: Phantom,
    path: Path,
    start: int = 0,
    stop: int | None = None,
    crf: int = 18,
    progress: Progress | None = None,
) -> Path:
    """Write frames ``[start, stop)`` as H.264 mp4 and their truth sidecar; return the sidecar path."""
    if phantom.width % 2 or phantom.height % 2:
        raise ValueError("H.264 mp4 needs an even width and height")
    frames = _frames(phantom, start, stop)
    _encode(
        phantom,
        path,
        frames,
        None,
        "libx264",
        "yuv420p",
        progress,
        {"crf": str(crf), "preset": "veryfast", "x264-params": X264_PARAMS},
    )
    side = sidecar_path(path)
    save_truth(truth_table(phantom, frames), side)
    log.info("wrote %s (%d frames) and %s", path, len(frames), side.name)
    return side


def write_y4m(
    phantom: Phantom, path: Path, start: int = 0, stop: int | None = None, progress: Progress | None = None
) -> Path:
    """Write frames ``[start, stop)`` as a yuv420p y4m clip (Chromium's ``--use-file-for-fake-video-capture``)."""
    if phantom.width % 2 or phantom.height % 2:
        raise ValueError("y4m yuv420p needs an even width and height")
    frames = _frames(phantom, start, stop)
    _encode(phantom, path, frames, "yuv4mpegpipe", "rawvideo", "yuv420p", progress, {})
    side = sidecar_path(path)
    save_truth(truth_table(phantom, frames), side)
    log.info("wrote %s (%d frames)", path, len(frames))
    return side
