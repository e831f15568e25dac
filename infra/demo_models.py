"""The demo's models: one micro TraMP-Former per pfed5 task (trajectory only: ``DemoTraining.rgb``), trained on
phantom patients landmarked by the real landmarker the live tracker runs (MediaPipe by default, never the phantom's
ground truth), cached under ``models/demo/<protocol>/<task>/<version>/`` and trained again only when missing or made
for another landmarker.

The phantom data are cut fairly (as in the scorer's ranking test): a clip starts a few frames before the phantom's
own movement onset (the same leads for every severity) and every clip has the same length, so neither the onset
delay nor the clip length can carry severity; only the face's movement can. The demo patient
(:mod:`infra.demo_patient`) marks each live task repetition with exactly this rule, so a live task clip is what the
model was trained on. Each model's validation Spearman (held-out subjects, one per severity) is printed and kept in
its manifest; the trivial clip-length baseline is 0 by construction (every clip has one length).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from common.manifest import Manifest
from common.protocols import get_protocol
from phantom.face import Phantom
from phantom.photo import PHOTOS, photo_face
from phantom.spec import PatientSpec

if TYPE_CHECKING:
    from trainer.data.cache import CachedClip
    from trainer.data.landmarking import VideoLandmarking

log = logging.getLogger(__name__)

DEMO_VERSION = "2"  # 2: photo-real training faces
FPS = 10.0  # the demo's camera rate and the models' rate
WIDTH, HEIGHT = 320, 240
CLIP_FRAMES = 18  # every task clip, live and in training
LEADS = (2, 3, 4)  # training clips start this many frames before the movement onset (cycled per severity)
LIVE_LEAD = 3  # the live demo patient marks a task this many frames before its onset
SEVERITIES = (0, 1, 2, 3, 4)
BATCH_CONTINUOUS = 32  # a continuous training has hundreds of overlapping clips per task: larger batches


@dataclasses.dataclass(frozen=True)
class DemoTraining:
    """How much phantom data the demo models are trained on (the defaults fit 10 minutes on 2 cores)."""

    tasks: tuple[str, ...] = ()  # empty: every pfed5 task
    per_severity: int = 3  # training subjects per severity (plus one held out per severity for validation)
    clips: int = 4  # repetitions used per subject
    epochs: int = 12
    first_seed: int = 7000
    clip_frames: int = CLIP_FRAMES
    # False: clips start a few frames before the movement onset (the demo patient's marks). True: clips start
    # anywhere in the subject's continuous performance (seeded), for a patient whose task prompts are not tied to
    # the phantom's movement (a browser patient page timing the tasks itself with a looping fake camera).
    anywhere: bool = False
    # > 0: each subject's whole performance (``clips`` repetitions of the task, head still) is rendered and
    # landmarked once, as one continuous stream (what the live tracker follows), and a training clip is cut from it
    # at every ``stride``-th frame: every phase a live task window can start at, from one landmarking pass.
    stride: int = 0
    appearance: str = "photo"  # the phantom's faces: "photo" (phantom.photoreal, as the demo's patients) or "cartoon"
    # False: the trajectory-only TraMP-Former (model.rgb = false). On the fair acceptance sets the RGB stream added
    # nothing and cost ranking on the amplitude-decoupled set (README, "Phantom acceptance run"); live, the browser
    # end-to-end test's three patients (severities 0, 2, 4) got mean smile scores 0.0 / 1.89 / 0.58 from RGB models
    # and 0.48 / 2.67 / 4.0, 1.15 / 2.68 / 4.0 and 2.47 / 2.51 / 3.99 (three runs) from trajectory-only ones.
    rgb: bool = False
    # The trajectory frames the model reads (T_p); 0: the micro config's (16). A clip longer than T_p is cut to its
    # latter T_p frames in training and live alike, so the model sees only the end of a longer live task clip.
    t_p: int = 0
    # The trajectory channels the model reads (trainer ``model.trajectory_inputs``): "all", "no_colour" or "motion"
    # (only each point's movement about its own mean position in the window: neither the face's shape nor its skin)
    trajectory_inputs: str = "all"
    # Another training for some tasks, by name: a model no check reads closely (the tests' frown) can be trained on
    # far less data than the one a check ranks by. The override's own tasks and per_task are ignored.
    per_task: tuple[tuple[str, DemoTraining], ...] = ()

    def for_task(self, task: str) -> DemoTraining:
        """The training of one task: its override from :attr:`per_task` if it has one, else this one."""
        chosen = dict(self.per_task).get(task, self)
        return dataclasses.replace(chosen, tasks=(task,), per_task=())


def onsets(phantom: Phantom) -> list[tuple[str, int, int]]:
    """(task, repetition, first frame of its movement) for every repetition of the phantom's script.

    The movement starts at the first frame past the idle lead-in: usually an ``onset`` frame, but a ramp shorter
    than one frame period (the fair phantom draws ramp durations per subject) leaves no onset frame at a low rate,
    and the movement then starts in ``hold``."""
    out = []
    for seg in phantom.schedule:
        first = next((i for i in range(seg.start, seg.end) if phantom.truth(i).phase != "idle"), None)
        if first is None:
            raise ValueError(f"{seg.task} repetition {seg.rep}: the phantom's script has no movement frame")
        out.append((seg.task, seg.rep, first))
    return out


def demo_models_dir(models_root: Path) -> Path:
    """Where the demo's artifacts live (separate from any model a user exported)."""
    return models_root / "demo"


def landmarker_identity(mediapipe_dir: Path) -> str:
    from tracker.settings import TrackerSettings
    from trainer.data.landmarking import VideoLandmarking

    return VideoLandmarking(TrackerSettings(landmarker="mediapipe", mediapipe_dir=mediapipe_dir)).landmarker_name


def missing(models: Path, tasks: tuple[str, ...], landmarker: str) -> list[str]:
    """The tasks without a demo artifact made for ``landmarker`` (an unreadable manifest counts as missing)."""
    out = []
    for task in tasks:
        try:
            manifest = Manifest.read(models / "pfed5" / task / DEMO_VERSION)
        except Exception:  # a missing or broken artifact is trained again
            out.append(task)
            continue
        if manifest.landmarker != landmarker:
            out.append(task)
    return out


def crop_side(models: Path, protocol: str = "pfed5") -> int:
    """The side of the RGB crops the tracker should publish for the demo's models: their common ``rgb_size`` when
    they all agree (the scorer then uses each crop as it comes, resized once from the 256 reference crop, exactly
    as in training), else 256 (the reference crop, which every model resizes itself). A 32 px crop is 3 KB on
    ``crops:{sid}`` where a 256 px one is 196 KB, written by the tracker and read back by the scorer per frame."""
    sides = set()
    for path in sorted((models / protocol).glob("*/*/manifest.json")):
        try:
            sides.add(Manifest.read(path.parent).rgb_size)
        except Exception:  # an unreadable artifact is the scorer's to report; it does not decide the crop size
            log.warning("unreadable demo manifest %s: crops stay 256 px", path)
            return 256
    return sides.pop() if len(sides) == 1 else 256


def _subjects(task: str, cfg: DemoTraining, per_severity: int, offset: int) -> list[PatientSpec]:
    seed = cfg.first_seed + offset
    reps = cfg.clips if cfg.stride else cfg.clips + 1

    def spec(j: int, sev: int) -> PatientSpec:
        return PatientSpec(seed + 10 * j + sev, "pfed5", float(sev), reps=reps, tasks=(task,), head_motion=0.0,
                           appearance=cfg.appearance)  # fmt: skip

    if cfg.appearance != "photo":
        return [spec(k, sev) for k, sev in itertools.product(range(per_severity), SEVERITIES)]
    # A photo-real face is one of a few portraits, mirrored or not: left to the seeds, a handful of subjects per
    # severity can put one portrait on the severe side only (measured: every severity-3 and -4 training subject on
    # one portrait, and held-out faces of that portrait then scored about 1 point higher at every severity). So each
    # severity takes the first seeds that cycle through the portraits and their mirror images in one order: the
    # face photographed cannot carry severity.
    looks = list(itertools.product(PHOTOS, (False, True)))
    picked: dict[int, list[PatientSpec]] = {sev: [] for sev in SEVERITIES}
    for n, sev in enumerate(SEVERITIES):
        j = 0
        while len(picked[sev]) < per_severity:
            want = looks[(len(picked[sev]) + n * (offset == 0)) % len(looks)]
            candidate = spec(j, sev)
            j += 1
            if _look(candidate) == want:
                picked[sev].append(candidate)
    return [picked[sev][k] for k, sev in itertools.product(range(per_severity), SEVERITIES)]


def _look(spec: PatientSpec) -> tuple[str, bool]:
    """Which portrait a photo-real subject wears, and whether mirrored."""
    face = photo_face(spec.subject_seed, spec.identity)
    return face.name, face.mirrored


def _clips(specs: list[PatientSpec], cfg: DemoTraining) -> Iterator[tuple[PatientSpec, int, int]]:
    """(subject, clip number, first frame) per clip; leads cycle within each severity."""
    count: dict[float, int] = {}
    for spec in specs:
        ph = Phantom(spec, WIDTH, HEIGHT, FPS)
        if cfg.anywhere:
            rng = np.random.default_rng(spec.seed)
            for k in range(cfg.clips):
                yield spec, k, int(rng.integers(0, ph.n_frames - cfg.clip_frames + 1))
            continue
        for _task, rep, onset in onsets(ph)[: cfg.clips]:
            k = count[spec.severity] = count.get(spec.severity, -1) + 1
            # a movement can start before the lead (the rest task's first repetition, at frame 1): the clip then
            # starts at the first frame, as the live demo patient's marks do (infra.demo_patient)
            yield spec, rep, min(max(0, onset - LEADS[k % len(LEADS)]), ph.n_frames - cfg.clip_frames)


def continuous_clips(
    task: str, specs: list[PatientSpec], cfg: DemoTraining, root: Path, landmarking: VideoLandmarking, load_size: int
) -> list[CachedClip]:
    """Each subject's whole performance rendered and landmarked once as one stream, then a ``cfg.clip_frames`` clip
    cut at every ``cfg.stride``-th frame and made into cache arrays by the trainer's own feature code. A clip
    without a usable face is left out (logged)."""
    from common.features import FeatureError
    from phantom.video import write_video
    from trainer.data.cache import CachedClip, FrameSizes, features_from_landmarks
    from trainer.data.records import ClipRecord

    records = []
    for spec in tqdm(specs, desc=f"rendering {task} subjects", unit="subject", leave=False):
        phantom = Phantom(spec, WIDTH, HEIGHT, FPS)
        video = root / "videos" / task / f"s{spec.seed}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        write_video(phantom, video)
        records.append(ClipRecord(f"{task}-s{spec.seed}", str(spec.seed), task, spec.severity, phantom.n_frames,
                                  None, None, None, "train", video=video))  # fmt: skip
    # trajectory only: the model never reads a clip's frames, so they are kept at 2 px (a 36 px copy of every
    # overlapping clip would be most of the cache's size and time)
    sizes = FrameSizes(load_size if cfg.rgb else 2, 32 if cfg.rgb else None, FPS)
    out: list[CachedClip] = []
    n = cfg.clip_frames
    with tqdm(total=sum(r.n_frames for r in records), desc=f"landmarking {task}", unit="frame", leave=False) as bar:
        for outcome in landmarking.run(records, bar.update):
            seen, record = outcome.clip, outcome.record
            if seen is None:
                log.warning("%s left out: %s", record.clip_id, outcome.error)
                continue
            for a in range(0, seen.face.size - n + 1, cfg.stride):
                part = dataclasses.replace(
                    seen, landmarks=seen.landmarks[a : a + n], colours=seen.colours[a : a + n],
                    crops=seen.crops[a : a + n], face=seen.face[a : a + n],
                    times=None if seen.times is None else seen.times[a : a + n])  # fmt: skip
                clip = dataclasses.replace(record, clip_id=f"{record.clip_id}f{a}", n_frames=n, video_start=a,
                                           video_end=a + n)  # fmt: skip
                path = root / "cache" / task / f"{clip.clip_id}.npz"
                try:
                    features_from_landmarks(part, sizes).save(path)
                except FeatureError as exc:
                    log.info("clip %s left out: %s", clip.clip_id, exc)
                    continue
                out.append(CachedClip(clip, path))
    return out


def train_demo_models(
    models: Path, mediapipe_dir: Path, cfg: DemoTraining | None = None, work: Path | None = None
) -> dict[str, float]:
    """Train and export every missing task's model into ``models``; return each task's validation Spearman."""
    import torch

    from phantom.video import write_video
    from tracker.settings import TrackerSettings
    from trainer import checkpoint
    from trainer.checkpoint import BEST
    from trainer.config import resolve
    from trainer.data.cache import build_cache
    from trainer.data.dataset import ExpressionData
    from trainer.data.landmarking import VideoLandmarking
    from trainer.data.records import ClipRecord
    from trainer.export import export
    from trainer.train import train_expression

    base = cfg or DemoTraining()
    tasks = base.tasks or get_protocol("pfed5").task_names
    scale = get_protocol("pfed5").scale
    landmarking = VideoLandmarking(TrackerSettings(landmarker="mediapipe", mediapipe_dir=mediapipe_dir))
    out: dict[str, float] = {}
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="feqa-demo-train-") as tmp:
        root = Path(work or tmp)
        for n, task in enumerate(tasks, 1):
            t0 = time.monotonic()
            cfg = base.for_task(task)
            log.info("demo model %d/%d: %s", n, len(tasks), task)
            val_specs = _subjects(task, cfg, 1, offset=0)
            train_specs = _subjects(task, cfg, cfg.per_severity, offset=1000)
            sets = [f"data.fps={FPS}", f"optim.epochs={cfg.epochs}", f"model.rgb={str(cfg.rgb).lower()}"]
            sets += [f"model.t_p={cfg.t_p}"] if cfg.t_p else []
            sets += [f"model.trajectory_inputs={cfg.trajectory_inputs}"] if cfg.trajectory_inputs != "all" else []
            sets += ["data.replicate=1", f"optim.batch_size={BATCH_CONTINUOUS}"] if cfg.stride else []
            run_cfg = resolve(["micro"], sets)
            if cfg.stride:
                clips = continuous_clips(task, val_specs + train_specs, cfg, root, landmarking, run_cfg.data.load_size)
                skipped = "each clip left out is logged"
            else:
                records = []
                for spec, rep, first in itertools.chain(_clips(val_specs, cfg), _clips(train_specs, cfg)):
                    video = root / "videos" / task / f"s{spec.seed}r{rep}.mp4"
                    video.parent.mkdir(parents=True, exist_ok=True)
                    write_video(Phantom(spec, WIDTH, HEIGHT, FPS), video, start=first, stop=first + cfg.clip_frames)
                    records.append(ClipRecord(f"{task}-s{spec.seed}r{rep}", str(spec.seed), task, spec.severity,
                                              cfg.clip_frames, None, None, None, "train", video=video))  # fmt: skip
                cached = build_cache(records, root / "cache", run_cfg.data.load_size, "video", lambda: landmarking,
                                     model_size=32, fps=FPS)  # fmt: skip
                clips, skipped = cached.clips, str(cached.skipped)
            val_ids = {str(s.seed) for s in val_specs}
            train = [c for c in clips if c.record.subject not in val_ids]
            val = [c for c in clips if c.record.subject in val_ids]
            if len(val) < len(SEVERITIES) or len(train) < 2 * len(SEVERITIES):
                raise RuntimeError(f"{task}: the landmarker found faces in too few phantom clips ({skipped})")
            run = root / "runs" / task
            result = train_expression(run_cfg, ExpressionData(task, train, val, []), run, resume=False)
            ckpt = checkpoint.read(run / BEST)  # typed: protocol, task, fps, label scale, landmarker, calibration
            if (ckpt.protocol, ckpt.label_min, ckpt.label_max) != ("pfed5", scale.min, scale.max):
                raise RuntimeError(f"{task}: demo checkpoint is for {ckpt.protocol} [{ckpt.label_min}, "
                                   f"{ckpt.label_max}], not pfed5 [{scale.min}, {scale.max}]")  # fmt: skip
            export(ckpt, models, version=DEMO_VERSION, name=f"demo_{task}",
                   metrics={"clip_length_spearman": 0.0})  # fmt: skip
            out[task] = result.best_val_spearman
            log.info("demo model %s: validation Spearman %.2f (%.0f s)", task, result.best_val_spearman,
                     time.monotonic() - t0)  # fmt: skip
    return out
