"""The demo's models: one micro TraMP-Former per pfed5 task (trajectory only: ``DemoTraining.rgb``), trained on
photo-real phantom patients landmarked by the real landmarker the live tracker runs (MediaPipe by default, never the
phantom's ground truth).

One recipe (:class:`DemoTraining`'s defaults) serves the product and the tests: each training subject's whole
performance of a task (five repetitions, head still) is rendered and landmarked once as one continuous stream, as
the live tracker follows a camera, and a ``CLIP_FRAMES`` (48-frame, 4.8 s) clip is cut at every fourth frame of it;
the model reads the whole clip (T_p 48). A live task window can then start at any phase of the movement: neither
its onset delay nor its length can carry severity (every clip has one length), only the face's movement can. The
demo patient (:mod:`infra.demo_patient`) marks each task repetition as one such window inside that task's own
performance, and the browser patient page's 4.8 s hold is one too.

The five models are committed (:data:`ARTIFACTS`, made by ``feqa train --demo infra/demo_artifacts``) with a
fingerprint of everything they depend on (:func:`fingerprint`); ``feqa demo`` serves them when it matches, else it
trains its own into ``models/demo/<protocol>/<task>/<version>/`` (cached, trained again only when missing or made
for another landmarker). Each model's validation Spearman (held-out subjects, one per severity) is printed and kept
beside the fingerprint; the trivial clip-length baseline is 0 by construction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from common.manifest import Manifest
from common.protocols import get_protocol
from phantom.face import Phantom
from phantom.photo import PHOTOS, photo_face
from phantom.spec import PatientSpec

if TYPE_CHECKING:
    from trainer.config import RunConfig
    from trainer.data.cache import CachedClip
    from trainer.data.landmarking import VideoLandmarking

log = logging.getLogger(__name__)

# 2: photo-real training faces; 3: one recipe for product and tests (48-frame clips cut at every 4th frame of
# continuous performances, read whole), committed as artifacts
DEMO_VERSION = "3"
FPS = 10.0  # the demo's camera rate and the models' rate
WIDTH, HEIGHT = 320, 240
CLIP_FRAMES = 48  # every task clip, live and in training: 4.8 s at 10 fps (the browser patient page's hold)
LEADS = (2, 3, 4)  # onset-aligned training clips (``stride=0``) start this many frames before the movement onset
LIVE_LEAD = 3  # the live demo patient's window starts this many frames before its movement onset where it can
ARTIFACTS = Path(__file__).resolve().parent / "demo_artifacts"  # the committed models (feqa train --demo)
FINGERPRINT = "fingerprint.json"
PHOTO_MARKS = Path(__file__).resolve().parents[1] / "phantom" / "photos.json"  # the photo-real faces' points
BUILD_COMMAND = "feqa train --demo infra/demo_artifacts"
SEVERITIES = (0, 1, 2, 3, 4)
BATCH_CONTINUOUS = 32  # a continuous training has hundreds of overlapping clips per task: larger batches


@dataclasses.dataclass(frozen=True)
class DemoTraining:
    """How much phantom data the demo models are trained on; the defaults are the demo's recipe (the committed
    artifacts, and what ``feqa demo`` trains when they do not fit)."""

    tasks: tuple[str, ...] = ()  # empty: every pfed5 task
    per_severity: int = 8  # training subjects per severity (plus one held out per severity for validation)
    clips: int = 5  # repetitions used per subject
    epochs: int = 5
    first_seed: int = 8000
    clip_frames: int = CLIP_FRAMES
    # False: clips start a few frames before the movement onset (the demo patient's marks). True: clips start
    # anywhere in the subject's continuous performance (seeded), for a patient whose task prompts are not tied to
    # the phantom's movement (a browser patient page timing the tasks itself with a looping fake camera).
    anywhere: bool = False
    # > 0: each subject's whole performance (``clips`` repetitions of the task, head still) is rendered and
    # landmarked once, as one continuous stream (what the live tracker follows), and a training clip is cut from it
    # at every ``stride``-th frame: every phase a live task window can start at, from one landmarking pass.
    stride: int = 4
    appearance: str = "photo"  # the phantom's faces: "photo" (phantom.photoreal, as the demo's patients) or "cartoon"
    # False: the trajectory-only TraMP-Former (model.rgb = false). On the fair acceptance sets the RGB stream added
    # nothing and cost ranking on the amplitude-decoupled set (README, "Phantom acceptance run"); live, the browser
    # end-to-end test's three patients (severities 0, 2, 4) got mean smile scores 0.0 / 1.89 / 0.58 from RGB models
    # and 0.48 / 2.67 / 4.0, 1.15 / 2.68 / 4.0 and 2.47 / 2.51 / 3.99 (three runs) from trajectory-only ones.
    rgb: bool = False
    # The trajectory frames the model reads (T_p); 0: the micro config's (16). A clip longer than T_p is cut to its
    # latter T_p frames in training and live alike, so the model sees only the end of a longer live task clip.
    t_p: int = CLIP_FRAMES
    # The trajectory channels the model reads (trainer ``model.trajectory_inputs``): "all", "no_colour" or "motion"
    # (only each point's movement about its own mean position in the window: neither the face's shape nor its skin)
    trajectory_inputs: str = "all"
    # Training subjects per severity for some tasks, by name, instead of ``per_severity`` (a lighter variant for a
    # task no check reads closely); the recipe gives every task the same 8.
    task_subjects: tuple[tuple[str, int], ...] = ()
    # Another training for some tasks, by name: a model no check reads closely can be trained on far less data than
    # the one a check ranks by. The override's own tasks, task_subjects and per_task are ignored.
    per_task: tuple[tuple[str, DemoTraining], ...] = ()

    def for_task(self, task: str) -> DemoTraining:
        """The training of one task: its override from :attr:`per_task` if it has one, else this one with its
        :attr:`task_subjects` applied."""
        override = dict(self.per_task).get(task)
        if override is not None:
            return dataclasses.replace(override, tasks=(task,), task_subjects=(), per_task=())
        subjects = dict(self.task_subjects).get(task, self.per_severity)
        return dataclasses.replace(self, tasks=(task,), per_severity=subjects, task_subjects=(), per_task=())


# A recipe of seconds for checking the build command itself (its parallel path, its reproducibility): one training
# subject per severity, two repetitions, every 8th frame, one epoch. Its models rank nothing.
TINY_TRAINING = DemoTraining(per_severity=1, clips=2, epochs=1, stride=8, task_subjects=())


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


def run_config(cfg: DemoTraining) -> RunConfig:
    """The trainer's configuration for one task's training (the micro TraMP-Former with the recipe's settings)."""
    from trainer.config import resolve

    sets = [f"data.fps={FPS}", f"optim.epochs={cfg.epochs}", f"model.rgb={str(cfg.rgb).lower()}"]
    sets += [f"model.t_p={cfg.t_p}"] if cfg.t_p else []
    # the micro config gives the rest task a shorter trajectory (16); the recipe reads every task's whole clip
    sets += [f"model.t_p_rest={cfg.t_p}"] if cfg.t_p and "rest" in cfg.tasks else []
    sets += [f"model.trajectory_inputs={cfg.trajectory_inputs}"] if cfg.trajectory_inputs != "all" else []
    sets += ["data.replicate=1", f"optim.batch_size={BATCH_CONTINUOUS}"] if cfg.stride else []
    return resolve(["micro"], sets)


def train_demo_models(
    models: Path, mediapipe_dir: Path, cfg: DemoTraining | None = None, work: Path | None = None
) -> dict[str, float]:
    """Train and export every missing task's model into ``models``; return each task's validation Spearman."""
    import torch

    from phantom.video import write_video
    from tracker.settings import TrackerSettings
    from trainer import checkpoint
    from trainer.checkpoint import BEST
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
            run_cfg = run_config(cfg)
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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def landmarker_fingerprint(mediapipe_dir: Path) -> dict[str, Any]:
    """The landmarker the models were trained through: its name (what observations carry), the trainer's landmarking
    identity (its version, settings and the verified models' record) and the sha256 of each of its model files."""
    from tracker.settings import TrackerSettings
    from trainer.data.landmarking import VideoLandmarking

    landmarking = VideoLandmarking(TrackerSettings(landmarker="mediapipe", mediapipe_dir=mediapipe_dir))
    files = {p.name: _sha256(p) for p in sorted(Path(mediapipe_dir).glob("*.onnx"))}
    return {"name": landmarking.landmarker_name, "identity": landmarking.identity(), "files": files}


def fingerprint(cfg: DemoTraining, mediapipe_dir: Path) -> dict[str, Any]:
    """Everything the demo models depend on, as plain JSON values: a change to any of it calls for a rebuild.

    The recipe per task and the trainer configuration it resolves to, the demo's version, camera rate and frame
    size, the landmarker (:func:`landmarker_fingerprint`), and the versions of the trajectory features, the model
    input and the cache (their point layout included), and the photo-real faces' hand-marked points."""
    from common import features, model_input
    from trainer.data import cache

    tasks = cfg.tasks or get_protocol("pfed5").task_names
    recipes = {task: cfg.for_task(task) for task in tasks}
    layout = {"feature_version": features.FEATURE_VERSION, "model_input_version": model_input.MODEL_INPUT_VERSION,
              "cache_version": cache.CACHE_VERSION, "regions": list(features.REGIONS),
              "points_106": list(features.TRAMP_POINTS_106), "points_71": list(features.TRAMP_POINTS_71)}  # fmt: skip
    value = {
        "demo_version": DEMO_VERSION,
        "camera": {"fps": FPS, "width": WIDTH, "height": HEIGHT, "severities": list(SEVERITIES)},
        "recipe": {task: dataclasses.asdict(r) for task, r in recipes.items()},
        "trainer_config": {task: run_config(r).to_dict() for task, r in recipes.items()},
        "landmarker": landmarker_fingerprint(mediapipe_dir),
        "trajectory_layout": layout,
        "phantom": {"photos_sha256": hashlib.sha256(PHOTO_MARKS.read_bytes()).hexdigest()},
    }
    normal: dict[str, Any] = json.loads(json.dumps(value))  # tuples as lists: what the file holds
    return normal


def read_fingerprint(folder: Path) -> dict[str, Any]:
    """What a build recorded in ``folder``: ``fingerprint``, ``spearman`` per task, ``command``, ``seconds``."""
    record: dict[str, Any] = json.loads((folder / FINGERPRINT).read_text())
    return record


def _config_fits(then: Any, now: Any, default: Any) -> bool:
    """Whether a trainer configuration recorded at a build (``then``) still describes the training the code would
    run now (``now``): every recorded setting has the same value, and a setting the trainer gained since is at the
    trainer's own default (``default``: the configuration no layer or override touched). The trainer's options keep
    their former behaviour at their default (each new one is off by default), so a setting added after the build
    at its default does not change what the build trained; a recorded setting gone or changed does."""
    if isinstance(then, dict) and isinstance(now, dict):
        defaults = default if isinstance(default, dict) else {}
        if any(k not in now for k in then):
            return False
        return all(_config_fits(then[k], now[k], defaults.get(k)) if k in then else now[k] == defaults.get(k, object())
                   for k in now)  # fmt: skip
    return bool(then == now)


def fingerprint_differences(now: dict[str, Any], then: dict[str, Any]) -> list[str]:
    """The parts of fingerprint ``then`` (recorded by a build) that the code's fingerprint ``now`` does not match:
    every part compared as it is, except the trainer configuration, which fits when :func:`_config_fits` says so."""
    from trainer.config import resolve

    default = resolve([], []).to_dict()
    out = []
    for key in sorted(now.keys() | then.keys()):
        a, b = then.get(key), now.get(key)
        if key == "trainer_config" and isinstance(a, dict) and isinstance(b, dict):
            fits = a.keys() == b.keys() and all(_config_fits(a[t], b[t], default) for t in a)
        else:
            fits = a == b
        if not fits:
            out.append(key)
    return out


def fingerprint_mismatch(folder: Path, cfg: DemoTraining, mediapipe_dir: Path) -> str:
    """Why the artifacts in ``folder`` do not fit ``cfg`` and this landmarker ('' when they do): the parts of the
    fingerprint that differ, or what is missing."""
    try:
        recorded = read_fingerprint(folder)["fingerprint"]
    except (OSError, ValueError, KeyError) as exc:
        return f"no readable {FINGERPRINT} in {folder} ({exc.__class__.__name__})"
    want = fingerprint(cfg, mediapipe_dir)
    differ = fingerprint_differences(want, recorded)
    if differ:
        return f"their fingerprint differs in {', '.join(differ)}"
    lost = missing(folder, tuple(want["recipe"]), want["landmarker"]["name"])
    return f"artifacts missing for {', '.join(lost)}" if lost else ""


def unchanged_tasks(out: Path, want: dict[str, Any]) -> dict[str, float]:
    """The tasks whose artifact in ``out`` a build of fingerprint ``want`` may keep, with their recorded validation
    Spearman: everything but the recipes and trainer configurations is the same, and so are this task's."""
    try:
        record = read_fingerprint(out)
        old, spearman = record["fingerprint"], record["spearman"]
    except (OSError, ValueError, KeyError):
        return {}
    from trainer.config import resolve

    if any(old.get(k) != v for k, v in want.items() if k not in ("recipe", "trainer_config")):
        return {}
    default = resolve([], []).to_dict()

    def same(task: str) -> bool:
        then = old.get("trainer_config", {}).get(task)
        return (
            old.get("recipe", {}).get(task) == want["recipe"][task]
            and then is not None
            and _config_fits(then, want["trainer_config"][task], default)
        )

    keep = [t for t in want["recipe"] if same(t) and t in spearman]
    lost = set(missing(out, tuple(keep), want["landmarker"]["name"]))
    return {t: float(spearman[t]) for t in keep if t not in lost}


def build_artifacts(
    out: Path, mediapipe_dir: Path, cfg: DemoTraining, workers: int, echo: Callable[[str], None], fresh: bool = False
) -> dict[str, Any]:
    """Train every task of ``cfg`` (``workers`` at a time) into ``out``: the models under
    ``out/pfed5/<task>/<version>/`` and :data:`FINGERPRINT` (the fingerprint, each task's validation Spearman and
    the command; no time or machine, so two builds of one recipe write the same file). A task whose artifact in
    ``out`` was built from the same fingerprint entries is kept as it is (:func:`unchanged_tasks`; the training is
    deterministic) unless ``fresh``. The build goes to a sibling folder first and replaces ``out`` only when it is
    complete; the record is returned with the build's ``seconds``."""
    from infra.demo_parallel import train_parallel

    tasks = tuple(cfg.tasks or get_protocol("pfed5").task_names)
    want = fingerprint(dataclasses.replace(cfg, tasks=tasks), mediapipe_dir)
    kept = {} if fresh else unchanged_tasks(out, want)
    building = out.parent / f".{out.name}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    for task in kept:
        shutil.copytree(out / "pfed5" / task, building / "pfed5" / task)
        echo(f"  {task} unchanged: its artifact is kept")
    t0 = time.monotonic()
    todo = tuple(t for t in tasks if t not in kept)
    spearman = {**kept, **(train_parallel(building, mediapipe_dir, cfg, todo, workers, echo) if todo else {})}
    record = {"fingerprint": want, "spearman": {t: round(spearman[t], 6) for t in tasks},
              "command": BUILD_COMMAND}  # fmt: skip
    (building / FINGERPRINT).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    building.rename(out)
    return {**record, "seconds": round(time.monotonic() - t0, 1)}
