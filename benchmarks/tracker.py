"""Tracker throughput: our pipeline against insightface's own FaceAnalysis, same frames, same models, one run.

Both sides use the same random-weight det_10g / 2d106det files (the real shapes; pretrained packs are not used)
at det size 640 on 640x480 phantom frames, one stream. FaceAnalysis is restricted to detection + landmark_2d_106
(what the reference extraction uses) and runs both models on every frame and every detected face. Ours decodes
the frame bytes, detects every ``detect_every`` frames and tracks in between, and adds the reference crop, the RGB
crop, head pose, colours and quality. Rounds alternate between the two so machine noise hits both alike.
With a CUDA device, it also measures batched throughput (8 sessions per tick) against batch 1.

    python benchmarks/tracker.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

# run as a script, this file's folder comes first on the path and its name would shadow the tracker package
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from common.framecodec import encode_frame
from common.messages import Frame
from phantom.face import Phantom
from phantom.spec import PatientSpec
from tracker.insightface_landmarker import InsightfaceLandmarker
from tracker.pipeline import FrameJob, FramePipeline
from tracker.settings import TrackerSettings
from tracker.testing.onnx_models import write_model_pack

W, H = 640, 480


def _frames(n: int) -> list[np.ndarray]:
    ph = Phantom(PatientSpec(seed=1, protocol="pfed5", severity=2.0), W, H, 30.0)
    return [ph.render(i) for i in range(n)]


def _reference(pack: Path, providers: list[str]) -> object:
    from insightface.app import FaceAnalysis

    fa = FaceAnalysis(name=str(pack), allowed_modules=["detection", "landmark_2d_106"], providers=providers)
    fa.prepare(ctx_id=0 if "CUDAExecutionProvider" in providers else -1, det_size=(640, 640), det_thresh=0.5)
    return fa


def _time_reference(fa: object, bgr: list[np.ndarray]) -> tuple[float, float]:
    faces = 0
    t0 = time.perf_counter()
    for img in bgr:
        faces += len(fa.get(img))  # type: ignore[attr-defined]
    return time.perf_counter() - t0, faces / len(bgr)


def _time_ours(settings: TrackerSettings, lm: InsightfaceLandmarker, payloads: list[bytes], sessions: int,
               batched: bool) -> float:  # fmt: skip
    pipe = FramePipeline(settings)
    frames = [
        [Frame(sid=f"s{k}", seq=i, capture_ts=i / 30, width=W, height=H, encoding="rgb24", data=p)
         for k in range(sessions)]
        for i, p in enumerate(payloads)
    ]  # fmt: skip
    t0 = time.perf_counter()
    for tick in frames:
        if batched:
            pipe.process([FrameJob(f, lm) for f in tick])
        else:
            for f in tick:
                pipe.process([FrameJob(f, lm)])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames (< 60 s)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures as a flat JSON object")
    ap.add_argument("--detect-every", type=int, default=5)
    args = ap.parse_args()
    n = 40 if args.quick else 150
    rounds = 2 if args.quick else 3
    cores = os.cpu_count() or 1
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]

    with tempfile.TemporaryDirectory() as tmp:
        pack = write_model_pack(Path(tmp) / "buffalo_l")
        settings = TrackerSettings(model_dir=pack, det_size=640, detect_every=args.detect_every,
                                   providers=tuple(providers))  # fmt: skip
        lm = InsightfaceLandmarker.from_settings(settings)
        fa = _reference(pack, providers)
        rgb = _frames(n)
        bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in rgb]
        payloads = [encode_frame(f, "rgb24") for f in rgb]
        _time_reference(fa, bgr[:5])  # warm-up
        _time_ours(settings, lm, payloads[:5], 1, True)
        ref_t, ours_t, faces = 0.0, 0.0, 0.0
        for _ in range(rounds):
            t, faces = _time_reference(fa, bgr)
            ref_t += t
            ours_t += _time_ours(settings, lm, payloads, 1, True)
        ref_fps = n * rounds / ref_t
        ours_fps = n * rounds / ours_t
        figures: dict[str, float] = {
            "fps": round(ours_fps, 2),
            "fps_per_core": round(ours_fps / cores, 2),
            "faceanalysis_fps": round(ref_fps, 2),
            "faceanalysis_fps_per_core": round(ref_fps / cores, 2),
            "speedup_vs_faceanalysis": round(ours_fps / ref_fps, 3),
            "faceanalysis_faces_per_frame": round(faces, 2),
            "detect_every": float(args.detect_every),
            "cores": float(cores),
        }
        if cuda:
            m = max(8, n // 5)
            one = _time_ours(settings, lm, payloads[:m], 8, False)
            many = _time_ours(settings, lm, payloads[:m], 8, True)
            figures["gpu_batch1_fps"] = round(8 * m / one, 2)
            figures["gpu_batched_fps"] = round(8 * m / many, 2)
            figures["gpu_batched_speedup"] = round(one / many, 3)

    print(f"tracker throughput, one stream of {W}x{H} phantom frames, det size 640, {cores} cores, {providers[0]}")
    print(f"{'path':<44}{'frames/s':>10}{'per core':>10}")
    print(f"{'insightface FaceAnalysis (det + 2d106)':<44}{ref_fps:>10.1f}{ref_fps / cores:>10.1f}")
    label = f"feqa tracker (detect every {args.detect_every})"
    print(f"{label:<44}{ours_fps:>10.1f}{ours_fps / cores:>10.1f}")
    print(f"speedup (ours / FaceAnalysis): {ours_fps / ref_fps:.2f}x   (FaceAnalysis faces per frame: {faces:.2f})")
    if cuda:
        print(f"GPU, 8 sessions: batch 1 {figures['gpu_batch1_fps']:.1f} fps, batched {figures['gpu_batched_fps']:.1f}"
              f" fps ({figures['gpu_batched_speedup']:.2f}x)")  # fmt: skip
    else:
        print("GPU batching: skipped (no CUDA execution provider)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
