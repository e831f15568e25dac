"""Tracker settings (``FEQA_TRACKER_*``), read once in ``__main__`` and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import CommonSettings, ServiceSettings


class TrackerSettings(ServiceSettings):
    """Everything the tracker worker needs: which landmarker, detector cadence, crops, quality gate, scale-out."""

    model_config = SettingsConfigDict(env_prefix="FEQA_TRACKER_", extra="ignore", frozen=True)

    common: CommonSettings = Field(default_factory=CommonSettings)

    # landmarker
    landmarker: Literal["mediapipe", "insightface", "phantom"] = Field(
        "mediapipe",
        description="mediapipe: MediaPipe Face Mesh for every session (default); insightface: the SCRFD + 2d106det "
        "pack; phantom: the phantom's ground truth read from its pixels (a test oracle, phantom sessions only)",
    )
    mediapipe_dir: Path = Field(
        Path("models/mediapipe"), description="converted MediaPipe face models (made by `feqa tracker fetch-models`)"
    )
    face_min_score: float = Field(0.5, gt=0, lt=1, description="MediaPipe face detector score threshold")
    face_nms_iou: float = Field(0.3, gt=0, lt=1, description="MediaPipe face detector weighted-NMS IoU")
    mesh_min_presence: float = Field(
        0.5, gt=0, lt=1, description="below this Face Mesh presence the face is re-detected"
    )
    iris: bool = Field(True, description="run the iris model for the pupils (else the eye outline's centre)")
    iris_every: int = Field(
        5,
        ge=1,
        description="run the iris model every N frames of a track; between, the pupils ride on the mesh's eye"
        " outlines (1 = every frame)",
    )
    iris_reopen: float = Field(
        0.08,
        gt=0,
        description="an eye opening (lid / corner distance) change above this since the last iris run "
        "runs it again at once",
    )
    smooth: bool = Field(True, description="One Euro filter on the MediaPipe landmarks against jitter")
    smooth_min_cutoff_hz: float = Field(2.0, gt=0, description="One Euro cutoff at rest (lower: smoother, more lag)")
    smooth_beta: float = Field(5.0, ge=0, description="One Euro speed coefficient (higher: less lag in motion)")
    model_dir: Path = Field(Path("models/insightface/buffalo_l"), description="insightface model pack directory")
    det_model: str = Field("det_10g.onnx", description="SCRFD detector file inside model_dir")
    landmark_model: str = Field("2d106det.onnx", description="106-point landmark file inside model_dir")
    det_size: int = Field(640, ge=32, description="insightface detector input side (the reference uses 640)")
    det_thresh: float = Field(0.5, gt=0, lt=1, description="insightface detector score threshold (reference 0.5)")
    nms_thresh: float = Field(0.4, gt=0, lt=1, description="insightface detector NMS IoU (reference 0.4)")
    providers: tuple[str, ...] = Field(("CPUExecutionProvider",), description="ONNX Runtime providers, in order")
    intra_op_threads: int = Field(
        1,
        ge=0,
        description="ONNX Runtime threads per model session (idle ones sleep, never spin), and OpenCV's threads in "
        "the tracker process; 0 = one per core. Scale out with tracker processes rather than threads",
    )

    malloc_arenas: int = Field(
        2,
        ge=0,
        description="cap on glibc's malloc arenas in the tracker process (0 = glibc's default, 8 per core): fewer "
        "arenas keep freed native memory from piling up per thread",
    )

    # tracking
    detect_every: int = Field(5, ge=1, description="run the detector every N frames while tracking holds")
    keep_iou: float = Field(0.3, ge=0, le=1, description="IoU with the last box that keeps the same face")
    drift_iou: float = Field(0.5, ge=0, le=1, description="landmark-box IoU below this forces a new detection")
    min_face_px: int = Field(32, ge=1, description="faces with a shorter box side are reported as tiny_face")
    max_frame_pixels: int = Field(4096 * 4096, ge=1, description="bigger frames are refused as frame_too_large")

    # outputs
    crop_size: int = Field(224, ge=16, description="side of the aligned RGB crop published on crops:{sid}")
    hop: int = Field(8, ge=1, description="a window event every this many observations")
    window_frames: int = Field(128, ge=2, description="T_p: frames a hop window names (models.md)")
    rest_window_frames: int = Field(64, ge=2, description="T_p of tasks the protocol marks rest")
    window_samples: int = Field(1800, ge=16, description="per-frame quality samples kept per session (bounded)")

    # quality gate and coaching
    min_det_score: float = Field(0.6, ge=0, le=1)
    max_yaw_deg: float = Field(30.0, gt=0)
    max_pitch_deg: float = Field(25.0, gt=0)
    min_brightness: float = Field(50.0, ge=0, le=255)
    max_brightness: float = Field(225.0, ge=0, le=255)
    min_sharpness: float = Field(15.0, ge=0, description="variance of the Laplacian of the 256 crop")
    min_face_fraction: float = Field(0.8, ge=0, le=1, description="share of a window's frames with a face")
    coach_after_windows: int = Field(3, ge=1, description="bad windows in a row before a coaching message")
    coach_repeat_s: float = Field(10.0, ge=0, description="the same coaching text at most this often")

    # scale-out
    consumer: str = Field("", description="consumer name in the tracker group; empty = host-pid")
    read_count: int = Field(32, ge=1, description="frames read per XREADGROUP")
    block_ms: int = Field(20, ge=1, description="how long one read waits for frames")
    lease_ttl_ms: int = Field(3000, ge=100, description="a session's owner must renew within this")
    reclaim_idle_ms: int = Field(1000, ge=0, description="pending frames idle this long are reclaimed on takeover")
    stale_ms: int = Field(2000, ge=0, description="frames older than this (by entry id) are skipped as stale")
    sweep_every_s: float = Field(2.0, gt=0, description="how often to end sessions whose ingest died")
    health_every_s: float = Field(2.0, gt=0, description="how often this worker publishes its Health entry")
