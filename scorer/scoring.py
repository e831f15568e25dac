"""One window -> one :class:`~common.messages.Score`: the span it covers, kinematics, the reasons to withhold, and the
model run through the frame-feature cache and the micro-batcher.

**Spans.** A task-end window covers its whole task clip, ``first_seq .. last_seq`` (the tracker sets them from the
task's start and end). A hop window covers the active task's clip so far, from the task's start to ``last_seq``
(the tracker does not know the model, so its ``first_seq`` for a hop only says where its quality summary starts).

**Model input.** The span's observations go through :func:`common.model_input.model_input`, the function the
trainer's datasets use, so a task score sees exactly what the model was trained and evaluated on (frames at the
model's fps by capture time, loop-padded short clips, the latter T_p frames of long ones, RGB frames uniform over the
clip). A hop window is the same clip rule applied to the task so far (so at the task's end the continuous score
converges on the task score), except that its RGB frames are the newest ``rgb_frames`` ones: consecutive windows then
share all but a hop's worth, and the frame-rate grid is anchored at the task's first frame, so they pick the same
frames. The RGB frames' spatial features come from the per-frame cache; frames not cached yet run through the frame
graph (batched across sessions) first.

**Kinematics** cover the task clip for a task-end window, and for a hop the part the model's trajectory sees
(the last ``(T_p - 1) / fps`` seconds), or the last ``hop_window_s`` seconds when no model (or no task) sets one;
``Score.first_seq`` is the first frame of that part.

**Withheld**, first reason that applies: ``session_gone`` (the session hash is gone), ``no_task``,
``no_consent`` (the session hash does not grant live scoring, or cannot be read), ``no_model``,
``landmarker_mismatch`` (the window's landmarker is not the one the model was trained on), ``quality:<checks>``
(the tracker's gate, then the scorer's own ``gap`` and ``no_crops`` checks), ``short_window`` (fewer than
``min_frames`` usable face frames), ``model_error`` (the model failed or gave a non-finite value). Kinematics are
computed for every window whatever the outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import numpy.typing as npt

from common import kinematics
from common.errors import FeqaError
from common.messages import Obs, Score, Window
from common.model_input import ObservedClip, model_input, rgb_input
from common.protocols import UnknownProtocol, get_protocol
from scorer.batching import MicroBatcher
from scorer.frame_rows import SpanRows, usable
from scorer.health import ScorerStats
from scorer.registry import LoadedModel, ModelRegistry
from scorer.session import SessionState
from scorer.settings import ScorerSettings

log = logging.getLogger(__name__)

NAN_POINTS = np.full((106, 2), np.nan, np.float32)
NAN_COLOURS = np.full((106, 3), np.nan, np.float32)


class Withheld(Exception):
    """A window that cannot be scored, with the reason the Score carries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def observed_clip(span: list[Obs]) -> ObservedClip:
    """The model-input view of a span: crop-px landmarks and colours, NaN where a frame has no usable face (the
    plain per-observation path; the scorer builds the same clip from its per-frame rows, :func:`rows_clip`)."""
    points, colours, ok = [], [], []
    for o in span:
        good = usable(o) and o.landmarks_crop is not None and o.colours is not None
        points.append(o.landmarks_crop if good and o.landmarks_crop is not None else NAN_POINTS)
        colours.append(o.colours.astype(np.float32) if good and o.colours is not None else NAN_COLOURS)
        ok.append(good)
    return ObservedClip.build([o.capture_ts for o in span], np.stack(points), np.stack(colours), ok)


def rows_clip(rows: SpanRows) -> ObservedClip:
    """:func:`observed_clip` of a span from its per-frame rows."""
    points, colours = rows.model_arrays()
    return ObservedClip.build(rows.capture_ts, points, colours, rows.usable)


def window_kinematics(span: list[Obs]) -> dict[str, float]:
    """The kinematics of a span (the plain per-observation path; the scorer uses :func:`rows_kinematics`)."""
    if not span:
        return {"frames": 0.0, "duration_s": 0.0}
    lm = np.stack([o.landmarks if usable(o) and o.landmarks is not None else NAN_POINTS for o in span])
    return kinematics.kinematics(lm, np.array([o.capture_ts for o in span], dtype=np.float64))


def rows_kinematics(rows: SpanRows) -> dict[str, float]:
    """:func:`window_kinematics` of a span from its per-frame rows (face-frame points converted once per frame)."""
    return kinematics.measures(*rows.face_frames())


class WindowScorer:
    def __init__(self, settings: ScorerSettings, registry: ModelRegistry, batcher: MicroBatcher,
                 stats: ScorerStats) -> None:  # fmt: skip
        self.s = settings
        self.registry = registry
        self.batcher = batcher
        self.stats = stats

    def span(self, state: SessionState, w: Window) -> list[Obs]:
        """The observations the model input is built from (see the module docstring)."""
        if w.reason == "task_end":
            return state.span(max(w.first_seq, 0), w.last_seq)
        if w.task and w.task_start_seq >= 0:
            return state.span(w.task_start_seq, w.last_seq)
        return _tail(state.span(0, w.last_seq), self.s.hop_window_s)

    def kinematics_span(self, w: Window, model: LoadedModel | None, span: list[Obs]) -> list[Obs]:
        if w.reason == "task_end":
            return span
        if model is not None and w.task:
            m = model.manifest
            return _tail(span, (m.t_p - 1) / m.fps + 0.5 / m.fps)
        return _tail(span, self.s.hop_window_s)

    def _make(self, state: SessionState, w: Window, model: LoadedModel | None, span: list[Obs],
              value: tuple[float, float] | None, reason: str, kin: dict[str, float],
              quality: dict[str, float]) -> Score:  # fmt: skip
        protocol = w.protocol or (state.info.protocol if state.info else "")
        try:
            scale = get_protocol(protocol).scale
            scale_fields: tuple[str, float, float] = (scale.name, scale.min, scale.max)
        except UnknownProtocol:
            scale_fields = ("", 0.0, 0.0)
        return Score(
            sid=w.sid, ts=time.time(), kind="task" if w.reason == "task_end" else "window", protocol=protocol,
            task=w.task, rep=w.rep, first_seq=span[0].seq if span else w.first_seq, last_seq=w.last_seq,
            capture_ts=span[-1].capture_ts if span else 0.0,
            score=value[0] if value else None, raw=value[1] if value else None,
            scale=scale_fields[0], scale_min=scale_fields[1], scale_max=scale_fields[2],
            model=model.name if model else "", version=model.version if model else "",
            withheld=reason, kinematics=kin, quality=quality,
        )  # fmt: skip

    def failed(self, state: SessionState, w: Window, reason: str) -> Score:
        """A withheld Score for a window whose scoring broke unexpectedly (logged by the caller)."""
        self.stats.withheld(reason)
        return self._make(state, w, None, [], None, reason, {}, dict(w.quality))

    async def score(self, state: SessionState, w: Window) -> Score:
        t0 = time.monotonic()
        protocol = w.protocol or (state.info.protocol if state.info else "")
        model = self.registry.get(protocol, w.task) if w.task else None
        span = self.span(state, w)
        seen = self.kinematics_span(w, model, span)
        kin = rows_kinematics(state.rows.span(seen))
        quality = dict(w.quality)
        value: tuple[float, float] | None = None
        reason = ""
        try:
            value = await self._value(state, w, model, span, quality)
        except Withheld as why:
            reason = why.reason
        score = self._make(state, w, model, seen, value, reason, kin, quality)
        kind = score.kind
        if reason:
            self.stats.withheld(reason)
        else:
            self.stats.count("windows_scored")
            if kind == "task":
                self.stats.count("task_scores")
        state.log.debug("window %s..%s %s: %s in %.1f ms", w.first_seq, w.last_seq, w.reason,
                        reason or f"{score.score:.3f}", 1000 * (time.monotonic() - t0))  # fmt: skip
        return score

    async def _value(
        self, state: SessionState, w: Window, model: LoadedModel | None, span: list[Obs], quality: dict[str, float]
    ) -> tuple[float, float]:
        """(calibrated score, raw) or :class:`Withheld`."""
        if state.info is None and (not span or state.info_problem == "no session hash"):
            raise Withheld("session_gone")
        if not w.task:
            raise Withheld("no_task")
        if state.info is None or not state.info.consent.live_scoring:
            raise Withheld("no_consent")
        if model is None:
            raise Withheld("no_model")
        if w.landmarker != model.manifest.landmarker:
            state.warn_once(f"lm:{model.uid}", "windows come from landmarker %r but %s %s was trained on %r: withheld",
                            w.landmarker, model.name, model.version, model.manifest.landmarker)  # fmt: skip
            raise Withheld("landmarker_mismatch")
        if w.failed:
            raise Withheld("quality:" + ",".join(w.failed))
        rows = state.rows.span(span)
        times = rows.capture_ts
        gap = float(np.diff(times).max()) if times.size > 1 else 0.0
        n_usable = int(rows.usable.sum())
        quality.update({"scored_frames": float(len(span)), "usable_frames": float(n_usable), "max_gap_s": gap})
        if n_usable < self.s.min_frames:
            raise Withheld("short_window")
        if gap > self.s.max_gap_s:
            raise Withheld("quality:gap")
        clip = rows_clip(rows)
        try:
            mi = model_input(clip, model.model.spec, rgb="uniform" if w.reason == "task_end" else "latest")
        except FeqaError as exc:
            state.log.warning("window %s..%s: no model input: %s", w.first_seq, w.last_seq, exc)
            raise Withheld("short_window") from exc
        quality["filled_frames"] = float(mi.filled)
        seqs = [span[int(r)].seq for r in mi.rgb_rows]
        feats = await self._frame_features(state, model, seqs, quality) if model.model.frame is not None else None
        feeds = model.model.window_feeds(mi.trajectory, mi.index_t, feats)
        try:
            out = await self.batcher.run(("window", model.uid), model.model.window.run, feeds, kind="window")
        except FeqaError as exc:
            state.log.error("window %s..%s: %s %s failed: %s", w.first_seq, w.last_seq, model.name, model.version, exc)
            raise Withheld("model_error") from exc
        value, raw = float(out["score"][0]), float(out["raw"][0])
        if not (np.isfinite(value) and np.isfinite(raw)):
            state.warn_once(f"nan:{model.uid}", "%s %s returned a non-finite score: withheld as model_error",
                            model.name, model.version)  # fmt: skip
            raise Withheld("model_error")
        return value, raw

    async def _frame_features(
        self, state: SessionState, model: LoadedModel, seqs: list[int], quality: dict[str, float]
    ) -> npt.NDArray[np.float32]:
        """Features of the window's RGB frames, from the cache or computed now (one frame-graph request)."""
        cache = state.features
        cache.use(model.uid)
        wanted = list(dict.fromkeys(seqs))
        todo = cache.missing(wanted)
        with_crop = [s for s in todo if s in state.crops]
        substitute: dict[int, int] = {}
        for s in todo:
            if s not in state.crops:
                near = _nearest(s, [x for x in wanted if x not in todo or x in state.crops])
                if near is None:
                    raise Withheld("quality:no_crops")
                substitute[s] = near
        if substitute:
            quality["rgb_substituted"] = float(len(substitute))
            self.stats.count("rgb_substituted", len(substitute))
        self.stats.count("frames_reused", len(wanted) - len(todo))
        if with_crop:
            self._check_crop_size(state, model, state.crops[with_crop[0]].shape[0])
            images = [state.crops[s] for s in with_crop]
            cache.reserve(with_crop)
            frame_graph = model.model.frame
            if frame_graph is None:  # pragma: no cover - checked by the caller
                raise Withheld("model_error")
            try:
                # resizing crops is C work that releases the GIL: off the event loop, alongside the graph calls
                frames = await asyncio.to_thread(rgb_input, images, model.model.spec)
                out = await self.batcher.run(("frame", model.uid), frame_graph.run, {"frames": frames}, kind="frame")
            except FeqaError as exc:
                cache.fail(with_crop, exc)
                state.log.error("frame features of %s failed: %s", model.name, exc)
                raise Withheld("model_error") from exc
            except BaseException as exc:  # a bad crop or a cancelled round: windows waiting on these must not hang
                cache.fail(with_crop, exc)
                raise
            features = out["features"]
            if not np.isfinite(features).all():
                cache.fail(with_crop, ValueError("non-finite frame features"))
                raise Withheld("model_error")
            cache.put(with_crop, features)
            self.stats.count("frames_computed", len(with_crop))
        try:
            got = await cache.wait([substitute.get(s, s) for s in wanted])
        except (FeqaError, ValueError) as exc:
            raise Withheld("model_error") from exc
        return np.stack([got[substitute.get(s, s)] for s in seqs]).astype(np.float32)

    def _check_crop_size(self, state: SessionState, model: LoadedModel, side: int) -> None:
        size = model.model.spec.rgb_size
        if side not in (256, size):
            state.warn_once(f"crop:{side}:{size}", "face crops are %d px; %s wants %d px, so each crop is resized a "
                            "second time and differs slightly from training: set FEQA_TRACKER_CROP_SIZE to 256 or %d",
                            side, model.name, size, size)  # fmt: skip


def _tail(span: list[Obs], seconds: float) -> list[Obs]:
    """The observations of the last ``seconds`` of ``span`` (by capture time)."""
    if not span:
        return span
    t_end = span[-1].capture_ts
    return [o for o in span if o.capture_ts >= t_end - seconds]


def _nearest(seq: int, candidates: list[int]) -> int | None:
    return min(candidates, key=lambda c: (abs(c - seq), c)) if candidates else None
