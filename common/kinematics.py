"""Interpretable facial kinematics on the 106 landmarks of a window (design.md §3), for every window, with or
without a model. Pure numpy, shared by the scorer (live), the trainer and the dashboard.

**Face frame.** Each frame's points are first put in a face-centred frame: each eye's centre is taken as the midpoint
of its two corners (106-indices 35/39 and 89/93, which stay put when the lids move, unlike the centre points 34/88);
the origin is midway between the two eyes, the x axis runs from one eye to the other, and their distance (the
inter-ocular distance, IOD) is the unit. Every distance below is therefore in IODs (about 6 cm on an adult face), it
does not change when the patient moves closer, sideways or tilts the head, and it is measured from the landmarks in
frame pixels (``Obs.landmarks``), whatever the camera resolution. Frames without a face or with non-finite points
are left out; times come from the sender's capture clock (``Obs.capture_ts``).

**Sides.** "left" and "right" are the *patient's* sides, assuming an un-mirrored camera (what ingest and the phantom
send): the patient's left is the image-right half, the insightface "right" groups (87-105). A mirrored camera
swaps them.

**Regions** (106-indices, models.md §5): ``brow_left`` 97-105, ``brow_right`` 43-51, ``eye_left`` and ``eye_right``
(the 8 lid-contour points of each eye, 87-96 and 33-42 without the centre and pupil), ``mouth`` 52-71 and its halves
``mouth_left`` (the image-right corner 61 with the contours 57-59 and 67-70) and ``mouth_right`` (52, 54-56, 63-66),
``nose`` 72-86 without the tip, and ``jaw`` (the contour 0-32).

The measures, each one key of :func:`kinematics` (normal values are those of the phantom at severity 0, healthy
face, at 25-30 fps; the tests pin their direction):

- ``rom_<region>`` **range of motion**, IOD: how far the region's moving points travel in the window. Per point, the
  spread of its positions (the 95th minus the 5th percentile, per axis, combined as a distance); averaged over the
  most mobile third of the region's points (the mouth's own rule follows). On the
  phantom a region the task does not use stays at 0.02-0.09 (micro-motion, blinks, the rest of the face pulling);
  a healthy smile moves the mouth corners about 0.08-0.18 IOD (subjects differ in expressiveness), a frown or brow
  raise the brows about 0.12-0.14. Smaller with hypomimia (severity-4 phantom: smile about 0.04-0.08, frown 0.04)
  or on a weak side. The mouth's range is its **corners'** travel (both corners averaged for ``rom_mouth``, the
  patient's own corner for each half): a smile, a spread or a pucker moves the corners, while lips that hang
  parted at rest (hypomimia anchors 3-4) move the middle of the lower lip, which ``mouth_opening`` reports; counted
  in the range they made a severe face's barely moving smile look as wide as a mild one. The corners are taken
  about the mouth's side-to-side centre (the mean x of its 20 points): the mouth sits in front of the eyes, so a
  head turn slides it sideways past them (about 0.14 IOD for a 20-degree turn) although it does not move on the
  face. A mouth opening moves the corners less than the lips (a wide opening about 0.1-0.18).
- ``speed_<region>`` **peak speed**, IOD per second: the 95th percentile over the window of the region's mean point
  speed, from positions smoothed over about 0.1 s (so landmark jitter does not count as motion; the mouth's points
  about its side-to-side centre, as for its range). Healthy phantom smiles peak near 0.11-0.25 IOD/s at the mouth
  (subjects differ; a mouth opening 0.2-0.6), severe ones near 0.08-0.18 (slower, smaller movement; a tremor adds
  speed without range); a resting face 0.07-0.2 (blinks, micro-motion, spontaneous expressions).
- ``asym_<brow|eye|mouth>`` **left/right asymmetry**, no unit, -1 .. 1: ``(rom_left - rom_right) / (rom_left +
  rom_right)``. 0 is symmetric; **negative means the patient's left side moves less** (a left-sided weakness),
  positive the right. Healthy phantom faces mostly stay within about ±0.1 (a subject's own mild asymmetry can
  reach 0.2 at the mouth corners); a grade-3 (high) phantom palsy reaches about
  ∓0.35 at the mouth while smiling and ∓0.6 at the brows while raising them. Left out when the region barely moves
  (both ranges under 0.04 IOD), where the ratio would be noise.
- ``blink_rate`` **blinks per minute**: eye closures (the mean lid gap of both eyes falling below half its median
  over the window, then opening again) per minute of window. A window shorter than 2 s gives none. Normal resting
  rates are about 10-20 per minute (the phantom blinks 17 times a minute when healthy); reduced blinking is a sign of
  hypomimia. Eye-closing tasks count as closures.
- ``eye_opening`` **lid gap**, IOD: the median over the window of the mean distance between the upper and lower lid
  of both eyes (about 0.15 on an open phantom eye).
- ``mouth_opening`` **mouth opening**, IOD: the 95th percentile of the gap between the inner lips (62 to 60); near 0
  with closed lips, 0.1-0.4 when the mouth opens.
- ``frames`` and ``duration_s``: how many usable frames and seconds the measures come from.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from common.features import FeatureError

EYE_CORNERS = ((35, 39), (89, 93))  # image-left eye, image-right eye
_EYE_RIGHT = (33, 35, 36, 37, 39, 40, 41, 42)  # image-left eye = patient's right
_EYE_LEFT = (87, 89, 90, 91, 93, 94, 95, 96)
# (upper, lower) lid pairs: top/bottom and the two quarter pairs of each eye
_LIDS_RIGHT = ((40, 33), (41, 36), (42, 37))
_LIDS_LEFT = ((94, 87), (95, 90), (96, 91))
_MOUTH_RIGHT = (52, 54, 55, 56, 63, 64, 65, 66)
_MOUTH_LEFT = (61, 57, 58, 59, 67, 68, 69, 70)
INNER_LIPS = (62, 60)  # upper lip bottom, lower lip top

REGIONS: dict[str, tuple[int, ...]] = {
    "brow_left": tuple(range(97, 106)),
    "brow_right": tuple(range(43, 52)),
    "eye_left": _EYE_LEFT,
    "eye_right": _EYE_RIGHT,
    "mouth": tuple(range(52, 72)),
    "mouth_left": _MOUTH_LEFT,
    "mouth_right": _MOUTH_RIGHT,
    "nose": tuple(range(72, 86)),
    "jaw": tuple(range(0, 33)),
}
MOUTH = REGIONS["mouth"]
# Points whose travel is a region's range of motion, where it is not the most mobile third of the region's points.
ROM_POINTS: dict[str, tuple[int, ...]] = {"mouth": (52, 61), "mouth_left": (61,), "mouth_right": (52,)}
PAIRS = ("brow", "eye", "mouth")
MIN_SYMMETRY_ROM = 0.04  # IOD: below this on both sides a region is still and its asymmetry is not reported
MIN_BLINK_WINDOW_S = 2.0
SMOOTH_S = 0.1

FloatArray = npt.NDArray[np.float64]

# Region membership as one matrix (column r averages region r's points), so every region's mean point speed comes
# from one product instead of one mean per region.
_REGION_MEAN = np.zeros((106, len(REGIONS)))
for _r, _idx in enumerate(REGIONS.values()):
    _REGION_MEAN[list(_idx), _r] = 1.0 / len(_idx)
_LIDS = np.array((*_LIDS_LEFT, *_LIDS_RIGHT))  # [6, 2] (upper, lower)


def face_frame(landmarks: npt.ArrayLike) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """[T, 106, 2] frame-px landmarks -> (points in the face frame [T, 106, 2] in IOD, usable-frame mask [T]).

    Unusable frames (non-finite points, or eye centres on top of each other) come back as NaN."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (106, 2):
        raise FeatureError(f"kinematics need landmarks [T, 106, 2], got {list(pts.shape)}")
    a = pts[:, EYE_CORNERS[0]].mean(axis=1)
    b = pts[:, EYE_CORNERS[1]].mean(axis=1)
    axis = b - a
    iod = np.hypot(axis[:, 0], axis[:, 1])
    ok = np.isfinite(pts).all(axis=(1, 2)) & (iod > 1e-6)
    safe = np.where(ok, iod, 1.0)
    ux = axis / safe[:, None]  # unit vector along the eye line
    uy = np.stack([-ux[:, 1], ux[:, 0]], axis=1)  # perpendicular (image-down for an upright face)
    rel = pts - ((a + b) / 2)[:, None, :]
    out = np.stack([(rel * ux[:, None, :]).sum(-1), (rel * uy[:, None, :]).sum(-1)], axis=-1) / safe[:, None, None]
    out[~ok] = np.nan
    return out, ok


def face_points(landmarks: npt.ArrayLike) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """What :func:`measures` takes, frame by frame: the face-frame points (:func:`face_frame`) with the mouth's
    points centred side to side (see ``rom_``), and the usable-frame mask. Each frame's result depends on that
    frame alone, so a live caller computes it once per frame and reuses it in every window holding the frame."""
    pts, ok = face_frame(landmarks)
    pts[:, MOUTH, 0] -= pts[:, MOUTH, 0].mean(axis=1, keepdims=True)
    return pts, ok


def _smooth(points: FloatArray, ts: FloatArray) -> FloatArray:
    """Centred moving average over about ``SMOOTH_S`` seconds (an odd number of frames, at least 1)."""
    if points.shape[0] < 3:
        return points
    dt = float(np.median(np.diff(ts)))
    k = max(1, round(SMOOTH_S / dt) if dt > 0 else 1)
    k += (k + 1) % 2  # odd
    if k == 1 or points.shape[0] < k:
        return points
    pad = k // 2
    padded = np.concatenate([np.repeat(points[:1], pad, 0), points, np.repeat(points[-1:], pad, 0)], axis=0)
    csum = np.concatenate([np.zeros((1, *points.shape[1:])), np.cumsum(padded, axis=0)], axis=0)
    return np.asarray((csum[k:] - csum[:-k]) / k, dtype=np.float64)


def _quantile(ordered: FloatArray, q: float) -> FloatArray:
    """The ``q`` quantile along axis 0 of values already sorted along it, by numpy's default (linear) rule: the
    same as ``np.percentile(values, 100 * q, axis=0)``, from one sort shared by every quantile of a window."""
    n = ordered.shape[0]
    pos = q * (n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    a, b = ordered[lo], ordered[hi]
    out: FloatArray = a + (b - a) * frac if frac < 0.5 else b - (b - a) * (1.0 - frac)
    return out


def _blinks(gap: FloatArray, base: float) -> int:
    """Closures: runs of frames with the lid gap below half its median ``base`` that begin after the first frame."""
    if base <= 0:
        return 0
    closed = gap < 0.5 * base
    starts = np.flatnonzero(closed[1:] & ~closed[:-1])
    return int(starts.size)


def kinematics(landmarks: npt.ArrayLike, capture_ts: npt.ArrayLike) -> dict[str, float]:
    """The measures of the module docstring for one window: landmarks [T, 106, 2] in frame px (NaN rows where no
    face) and capture times [T] in seconds. Measures that need more than the window holds are left out; with fewer
    than 2 usable frames only ``frames`` and ``duration_s`` are given."""
    ts_all = np.asarray(capture_ts, dtype=np.float64)
    pts, ok = face_points(landmarks)
    if ts_all.shape != (pts.shape[0],):
        raise FeatureError(f"capture times have shape {list(ts_all.shape)}, landmarks {pts.shape[0]} frames")
    return measures(pts[ok], ts_all[ok])


def measures(points: FloatArray, ts: FloatArray) -> dict[str, float]:
    """:func:`kinematics` on the usable frames only, already in the face frame (:func:`face_points`): points
    [T, 106, 2] in IOD and their capture times [T]. Every percentile and median of the window comes from one sort
    of its positions, lid gaps and lip gaps and one of its region speeds."""
    pts = np.asarray(points, dtype=np.float64)
    ts = np.asarray(ts, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (106, 2) or ts.shape != (pts.shape[0],):
        raise FeatureError(f"measures need points [T, 106, 2] and times [T], got {list(pts.shape)}, {list(ts.shape)}")
    if ts.size > 1 and np.any(np.diff(ts) < 0):
        raise FeatureError("capture times must be non-decreasing")
    duration = float(ts[-1] - ts[0]) if ts.size else 0.0
    out: dict[str, float] = {"frames": float(ts.size), "duration_s": duration}
    if ts.size < 2:
        return out
    n = ts.size
    # one sort over time of every per-frame value a percentile is taken of: 212 coordinates, lid gap, lip gap
    lids = pts[:, _LIDS[:, 0]] - pts[:, _LIDS[:, 1]]  # [T, 6, 2]
    lips = pts[:, INNER_LIPS[0]] - pts[:, INNER_LIPS[1]]
    columns = np.empty((n, 106 * 2 + 2))
    columns[:, :212] = pts.reshape(n, 212)
    columns[:, 212] = np.hypot(lids[..., 0], lids[..., 1]).mean(axis=1)
    columns[:, 213] = np.hypot(lips[:, 0], lips[:, 1])
    ordered = np.sort(columns, axis=0)
    lo, hi = _quantile(ordered, 0.05), _quantile(ordered, 0.95)
    spread_all = np.hypot(hi[0:212:2] - lo[0:212:2], hi[1:212:2] - lo[1:212:2])  # [106] per point
    smooth = _smooth(pts, ts)
    dt = np.diff(ts)
    step = np.hypot(*np.moveaxis(np.diff(smooth, axis=0), -1, 0))  # [T-1, 106]
    moving = dt > 0
    region_speed = np.sort((step[moving] / dt[moving, None]) @ _REGION_MEAN, axis=0)  # [frames with dt > 0, R]
    speed_q = _quantile(region_speed, 0.95) if region_speed.shape[0] else None
    rom: dict[str, float] = {}
    for r, (name, idx) in enumerate(REGIONS.items()):
        if name in ROM_POINTS:
            rom[name] = float(np.mean(spread_all[list(ROM_POINTS[name])]))
        else:
            spread = np.sort(spread_all[list(idx)])[::-1]
            rom[name] = float(np.mean(spread[: max(1, len(idx) // 3)]))
        out[f"rom_{name}"] = rom[name]
        if speed_q is not None:
            out[f"speed_{name}"] = float(speed_q[r])
    for pair in PAIRS:
        left, right = rom[f"{pair}_left"], rom[f"{pair}_right"]
        if max(left, right) >= MIN_SYMMETRY_ROM:
            out[f"asym_{pair}"] = (left - right) / (left + right)
    gap_median = float(_quantile(ordered[:, 212], 0.5))
    out["eye_opening"] = gap_median
    if duration >= MIN_BLINK_WINDOW_S:
        out["blink_rate"] = _blinks(columns[:, 212], gap_median) * 60.0 / duration
    out["mouth_opening"] = float(hi[213])
    return out
