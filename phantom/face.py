"""The phantom: a synthetic patient performing a protocol, with exact ground truth for every frame.

``Phantom(spec, width, height, fps)`` lays out the protocol (:mod:`phantom.script`), precomputes the motion
(:mod:`phantom.motion`), and then answers ``truth(i)`` (106 landmarks in image pixels, pose, task, phase) and
``render(i)`` (RGB uint8 with the frame index embedded by :mod:`phantom.index_code`) for any frame, in any order.
Head pose is applied as a rotation about a pivot behind the face and a weak-perspective projection.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt

from phantom.deform import CONTROLS, control_basis
from phantom.geometry import HEAD_PIVOT, N_ALL, neutral_points
from phantom.index_code import MAX_INDEX, embed_index
from phantom.layout import N_POINTS, idx
from phantom.motion import N_MODES, build_motion
from phantom.overlay import apply_light, draw_glasses, draw_hand
from phantom.photo import photo_face
from phantom.photoreal import PhotoRenderer
from phantom.render import FaceRenderer
from phantom.script import PHASES, Segment, build_script
from phantom.spec import PatientSpec
from phantom.traits import ClipNuisance

FACE_SCALE = 0.19  # one inter-ocular distance as a fraction of min(width, height)
FACE_Y = 0.40  # eye line as a fraction of the height
MICRO_AMPLITUDE = 0.006  # idle micro-motion: smooth warps plus a quarter of that as per-point jitter
_LID_PAIRS = [
    (idx(f"{s}_eye_{up}"), idx(f"{s}_eye_{low}"))
    for s in ("left", "right")
    for up, low in (
        ("top", "bottom"),
        ("upper_left_quarter", "lower_left_quarter"),
        ("upper_right_quarter", "lower_right_quarter"),
    )
]


@dataclass(frozen=True, eq=False)
class FrameTruth:
    """Ground truth of one frame. ``landmarks`` are float32 [106, 2] image pixels (pixel centres at integers);
    ``pose`` is (yaw, pitch, roll) in degrees; ``severity`` is the spec's label."""

    index: int
    t: float
    landmarks: npt.NDArray[np.float32]
    pose: tuple[float, float, float]
    task: str
    rep: int
    phase: str
    severity: float


def _rotation(yaw: float, pitch: float, roll: float) -> npt.NDArray[np.float64]:
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    out: npt.NDArray[np.float64] = rz @ rx @ ry
    return out


class Renderer(Protocol):
    """Draws a frame from projected points: the cartoon (:class:`FaceRenderer`) or a photo (:class:`PhotoRenderer`)."""

    @property
    def skin_rgb(self) -> tuple[int, int, int]: ...

    @property
    def wears_glasses(self) -> bool: ...

    def draw(self, pts: npt.NDArray[np.float64], unit_px: float) -> npt.NDArray[np.uint8]: ...

    def add_noise(self, frame: npt.NDArray[np.uint8], noise_offset: tuple[int, int]) -> None: ...


class Phantom:
    """A synthetic patient rendered at ``width`` x ``height`` and ``fps``; deterministic in ``spec``."""

    def __init__(
        self, spec: PatientSpec, width: int = 640, height: int = 480, fps: float = 30.0, noise: bool = True
    ) -> None:
        if width < 64 or height < 48:
            raise ValueError(f"frame size {width}x{height} is too small (min 64x48)")
        if not 1.0 <= fps <= 240.0:
            raise ValueError(f"fps must lie in [1, 240], got {fps}")
        self.spec = spec
        self.width = int(width)
        self.height = int(height)
        self.fps = float(fps)
        self.noise = noise
        self._script = build_script(spec, self.fps)
        if self._script.n_frames > MAX_INDEX + 1:
            raise ValueError(f"clip of {self._script.n_frames} frames exceeds the index code's {MAX_INDEX + 1}")
        self._motion = build_motion(spec, self._script, self.fps)
        self._photo = photo_face(spec.subject_seed, spec.identity) if spec.appearance == "photo" else None
        self._neutral = neutral_points(spec.identity) if self._photo is None else self._photo.neutral
        self._basis = control_basis(self._neutral)
        self._tremor_field = self._tremor_site_field()
        self._hand = ClipNuisance.draw(spec.seed).hand if spec.nuisance else None
        rng = np.random.default_rng([spec.seed, 29])
        warps = rng.normal(0.0, MICRO_AMPLITUDE, (N_MODES, 3, 3))
        jitter = rng.normal(0.0, MICRO_AMPLITUDE / 4, (N_MODES, N_ALL, 3))
        self._micro_modes = np.einsum("kij,nj->kni", warps, self._neutral) + jitter
        self._micro_modes[:, :, 2] = 0.0

    def _tremor_site_field(self) -> npt.NDArray[np.float64]:
        """Unit displacement the tremor moves: the jaw, or only the lower lip (a head tremor moves the pose)."""
        field = self._basis.reshape(self._basis.shape[0], N_ALL, 3)

        def both(name: str) -> npt.NDArray[np.float64]:
            k = CONTROLS.index(name)
            out: npt.NDArray[np.float64] = field[2 * k] + field[2 * k + 1]
            return out

        site = (
            both("lip_part") * (both("lip_part")[:, 1:2] > 0)
            if self.spec.traits.tremor_site == "lips"
            else both("jaw_open")
        )
        return site / max(1e-9, float(np.abs(site[:, 1]).max()))

    @property
    def n_frames(self) -> int:
        return self._script.n_frames

    @property
    def schedule(self) -> list[Segment]:
        """Every (task, rep, start_frame, end_frame) of the clip, end exclusive."""
        return list(self._script.segments)

    @cached_property
    def renderer(self) -> Renderer:
        ident, seed = self.spec.identity, self.spec.seed
        if self._photo is not None:
            return PhotoRenderer(self._photo, ident, self.width, self.height, seed, noise=self.noise)
        return FaceRenderer(ident, self.width, self.height, seed, noise=self.noise)

    @property
    def unit_px(self) -> float:
        """Pixels per inter-ocular distance at scale 1 (the head's distance drift scales it per frame)."""
        return FACE_SCALE * min(self.width, self.height)

    def _check(self, index: int) -> None:
        operator.index(index)
        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame {index} outside 0..{self.n_frames - 1}")

    def points3d(self, index: int) -> npt.NDArray[np.float64]:
        """[N_ALL, 3] deformed face (face units, before pose)."""
        self._check(index)
        m = self._motion
        pts: npt.NDArray[np.float64] = self._neutral + (m.controls[index] @ self._basis).reshape(N_ALL, 3)
        pts += self._tremor_field * m.tremor[index]
        pts += np.tensordot(m.micro[index], self._micro_modes, axes=1)
        for up, low in _LID_PAIRS:  # a squeezed lid never passes below the lower lid
            pts[up, 1] = min(pts[up, 1], pts[low, 1] - 0.002)
        return pts

    def project(self, index: int) -> tuple[npt.NDArray[np.float64], float]:
        """Image-pixel positions [N_ALL, 2] of every point of frame ``index`` and the frame's px per unit."""
        yaw, pitch, roll, dx, dy, scale = self._motion.pose[index]
        pivot = np.asarray(HEAD_PIVOT)
        centre = np.array([self.width * (0.5 + dx), self.height * (FACE_Y + dy)])
        # what a pinhole camera (focal length = frame width) sees of a head off its axis: the head viewed along the
        # ray to it, so an off-centre face shows a little of its side while its pose (the truth) stays the same
        ray_x = math.degrees(math.atan((centre[0] - self.width / 2) / self.width))
        ray_y = math.degrees(math.atan((centre[1] - self.height / 2) / self.width))
        seen = _rotation(ray_x, -ray_y, 0.0) @ _rotation(yaw, pitch, roll)
        rotated = (self.points3d(index) - pivot) @ seen.T + pivot
        unit = self.unit_px * scale
        return centre + unit * rotated[:, :2], float(unit)

    def truth(self, index: int) -> FrameTruth:
        """Ground truth of frame ``index``."""
        index = operator.index(index)
        pts, _ = self.project(index)
        seg = self._script.segments[int(self._script.segment_of[index])]
        yaw, pitch, roll = (float(v) for v in self._motion.pose[index, :3])
        return FrameTruth(
            index=index,
            t=index / self.fps,
            landmarks=pts[:N_POINTS].astype(np.float32),
            pose=(yaw, pitch, roll),
            task=seg.task,
            rep=seg.rep,
            phase=PHASES[int(self._script.phase[index])],
            severity=float(self.spec.severity),
        )

    def render(self, index: int) -> npt.NDArray[np.uint8]:
        """RGB uint8 [height, width, 3] of frame ``index`` with the index embedded."""
        return self.render_with(self.renderer, index)

    def render_with(self, renderer: Renderer, index: int) -> npt.NDArray[np.uint8]:
        """:meth:`render` through a given renderer (benchmarks compare renderers on the same frames)."""
        index = operator.index(index)
        pts, unit = self.project(index)
        offset = ((index * 7919) % 31, (index * 104729) % 29)
        frame = renderer.draw(pts, unit)
        if self.spec.nuisance and self.spec.traits.glasses and not renderer.wears_glasses:
            draw_glasses(frame, pts, unit)
        hand = self._hand
        if hand is not None and self._motion.hand[index] > 0:
            draw_hand(frame, pts, unit, float(self._motion.hand[index]), hand.side, hand.reach, renderer.skin_rgb)
        apply_light(frame, self._motion.light[index])
        renderer.add_noise(frame, offset)
        embed_index(frame, index)
        return frame
