"""QAFE-Net's auxiliary movement target: a training-only signal asking both encoders to code what moves.

On the phantom a subject's face (its shape, skin, lighting) is far more visible in QAFE-Net's inputs than the smile
is, and the micro model learns to tell subjects apart rather than to see the movement (README, "QAFE-Net across
subjects"). With ``train.motion_aux = w > 0`` training adds ``w`` times a second loss: from each stream's per-frame
features (:meth:`~trainer.models.qafenet.QafeNet.forward_per_frame`), a linear map of a frame's features minus the
window's first frame's must give how the face's shape changed between those two frames (:func:`movement_targets`).

The targets come from the same observed landmarks the heatmaps are drawn from (the clip's trajectory), never from a
dataset's ground truth, and use only what every task and every augmentation leaves alone: distances within the face,
in units of the pupil distance (so position and zoom do not change them), left and right pooled (so a horizontal
flip does not). The heads (:class:`MotionHead`) live beside the model, not in it: checkpoints, evaluation and the
exported graphs hold exactly the paper's architecture.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from common.errors import ConfigError

# Slots of the 63 region-major trajectory points (common.features.TRAMP_POINTS_106): 9 per region.
LEFT_EYE, LEFT_BROW = tuple(range(0, 9)), tuple(range(9, 18))
RIGHT_EYE, RIGHT_BROW = tuple(range(18, 27)), tuple(range(27, 36))
NOSE = tuple(range(36, 45))
BOTTOM_LIP = tuple(range(45, 54))
UPPER_LIP = tuple(range(54, 63))
MOUTH = BOTTOM_LIP + UPPER_LIP
PUPILS = (4, 22)  # 106-points 38 and 92
MOUTH_CORNERS = (45, 49)  # 106-points 52 and 61
TARGETS = ("mouth_width", "mouth_opening", "corner_lift", "mouth_drop", "eye_opening", "brow_raise")
"""What :func:`movement_targets` gives per frame, each the change since the first frame in pupil distances: the mouth
corners' distance; the lower lip's mean height below the upper lip's; the corners' mean height above the whole
mouth's (a smile lifts them); the mouth's mean height below the nose's; the eyes' vertical spread (the standard
deviation of their points' heights, both eyes averaged); the eyes' mean height below the brows' (both sides)."""
VARIANCE_FLOOR = 1e-4  # (0.01 pupil distances)^2: a batch that barely moves is not amplified into noise


def _mean_y(xy: npt.NDArray[np.float64], slots: tuple[int, ...]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = xy[:, list(slots), 1].mean(axis=1)
    return out


def movement_targets(trajectory: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """[T, 63, >=2] trajectory (x, y in crop pixels first) of the frames a model sees -> [T, 6] (:data:`TARGETS`);
    row 0 is zero by construction. Every target is signed, the same for a face and its mirror image (left and right
    are pooled), and blind to where the face is and to its size, so flips, crops and zoom leave it alone."""
    xy = np.asarray(trajectory, dtype=np.float64)[:, :, :2]
    if xy.ndim != 3 or xy.shape[1] != 63 or xy.shape[0] == 0:
        raise ValueError(f"expected a trajectory [T, 63, >=2], got {list(np.shape(trajectory))}")
    scale = max(float(np.linalg.norm(xy[:, PUPILS[0]] - xy[:, PUPILS[1]], axis=1).mean()), 1e-6)
    corners = list(MOUTH_CORNERS)
    eyes = [xy[:, list(side), 1].std(axis=1) for side in (LEFT_EYE, RIGHT_EYE)]
    values = np.stack(
        [
            np.linalg.norm(xy[:, corners[0]] - xy[:, corners[1]], axis=1),
            _mean_y(xy, BOTTOM_LIP) - _mean_y(xy, UPPER_LIP),
            _mean_y(xy, MOUTH) - xy[:, corners, 1].mean(axis=1),
            _mean_y(xy, MOUTH) - _mean_y(xy, NOSE),
            (eyes[0] + eyes[1]) / 2,
            (_mean_y(xy, LEFT_EYE) - _mean_y(xy, LEFT_BROW) + _mean_y(xy, RIGHT_EYE) - _mean_y(xy, RIGHT_BROW)) / 2,
        ],
        axis=1,
    )
    out: npt.NDArray[np.float32] = ((values - values[:1]) / scale).astype(np.float32)
    return out


def fraction_unexplained(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The squared error summed over the targets over their variances summed, both over the batch's frames ([..., K]
    each; 1 = no better than the batch mean, 0 = exact). Pooled, so a target that barely moves (one at the landmarks'
    noise level, in a task that does not move it) weighs little; the pooled variance is floored at
    :data:`VARIANCE_FLOOR`."""
    flat_p, flat_t = pred.reshape(-1, pred.shape[-1]), target.reshape(-1, target.shape[-1])
    var = flat_t.var(dim=0, unbiased=False).sum().clamp_min(VARIANCE_FLOOR)
    return ((flat_p - flat_t) ** 2).mean(dim=0).sum() / var


class MotionHead(nn.Module):
    """One linear map per stream from a frame's features minus the window's first frame's to :data:`TARGETS`
    (no bias, so the first frame predicts exactly its zero)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.rgb = nn.Linear(dim, len(TARGETS), bias=False)
        self.heatmaps = nn.Linear(dim, len(TARGETS), bias=False)
        for head in (self.rgb, self.heatmaps):  # from zero: the second loss starts near 1, not at the features' scale
            nn.init.zeros_(head.weight)

    def loss(self, rgb: torch.Tensor, heatmaps: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-frame features [B, T, D] of each stream and the targets [B, T, K] -> the two streams' mean
        :func:`fraction_unexplained` over frames 1..T-1."""
        target = target[:, 1:]
        out = [fraction_unexplained(head(f[:, 1:] - f[:, :1]), target) for head, f in ((self.rgb, rgb),
               (self.heatmaps, heatmaps))]  # fmt: skip
        return (out[0] + out[1]) / 2


def motion_head(model: nn.Module, weight: float) -> MotionHead | None:
    """The head for ``model`` when ``train.motion_aux = weight`` asks for one (None at 0); only QAFE-Net has the
    per-frame features it reads."""
    if weight < 0:
        raise ConfigError(f"train.motion_aux must be >= 0, got {weight}")
    if weight == 0:
        return None
    cfg = getattr(model, "cfg", None)
    if not hasattr(model, "forward_per_frame") or cfg is None:
        raise ConfigError(f"train.motion_aux is QAFE-Net's; {type(model).__name__} has no per-frame features for it")
    if any(s != 1 for s in cfg.heat.temporal_strides):
        raise ConfigError("train.motion_aux needs SlowOnly to keep every frame (temporal_strides all 1)")
    return MotionHead(int(cfg.dim))
