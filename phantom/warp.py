"""Piecewise-affine warping over a fixed triangle mesh: each destination triangle samples its source triangle.

The mesh is triangulated once (Delaunay on a reference layout of the vertices) and keeps its topology while the
vertices move. Per frame, every triangle gets the affine map from its destination corners to its source corners, so
each vertex lands exactly where it should: a photo landmark is drawn exactly at the truth point it stands for.

Pixels are assigned to triangles by rasterising triangle ids (sub-pixel, ``shift=4``) in a draw order: triangles
listed as ``under`` first (the inside of the eyes and the mouth, which collapse and may fold when the eyes close or
the lips meet), then the rest, which cover anything folded out of place.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
from scipy.spatial import Delaunay

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
SHIFT = 4
MIN_AREA = 1e-6


def zipper(a: Sequence[int], b: Sequence[int], points: F64) -> list[tuple[int, int, int]]:
    """Triangles filling the strip between two polylines that share their end points (``a[0] == b[0]``,
    ``a[-1] == b[-1]``), stepping along whichever line is behind in x."""
    out: list[tuple[int, int, int]] = []
    i = j = 0
    while i < len(a) - 1 or j < len(b) - 1:
        step_a = j == len(b) - 1 or (i < len(a) - 1 and points[a[i + 1], 0] <= points[b[j + 1], 0])
        if step_a:
            tri = (a[i], a[i + 1], b[j])
            i += 1
        else:
            tri = (a[i], b[j + 1], b[j])
            j += 1
        if len(set(tri)) == 3:
            out.append(tri)
    return out


def inside_polygon(points: F64, polygon: F64) -> npt.NDArray[np.bool_]:
    """Which ``points`` [N, 2] lie inside a closed ``polygon`` [M, 2] (even-odd rule)."""
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x0, y0 = polygon[:, 0][None], polygon[:, 1][None]
    x1, y1 = np.roll(polygon[:, 0], -1)[None], np.roll(polygon[:, 1], -1)[None]
    crosses = ((y0 > y) != (y1 > y)) & (x < x0 + (y - y0) * (x1 - x0) / np.where(y1 == y0, 1e-12, y1 - y0))
    out: npt.NDArray[np.bool_] = crosses.sum(axis=1) % 2 == 1
    return out


def triangulate(
    reference: F64,
    under: Sequence[Sequence[int]] = (),
    hole: Sequence[int] = (),
    filled: Sequence[tuple[int, int, int]] = (),
) -> tuple[I32, I32]:
    """Triangles [K, 3] of the vertices' reference layout [V, 2] and their draw order [K].

    Delaunay over every vertex not used only by ``filled``; its triangles inside the polygon ``hole`` are replaced by
    the given ``filled`` ones (a region whose topology Delaunay would get wrong, such as the lips). Triangles whose
    corners all belong to one of the ``under`` groups are drawn first."""
    only_filled = {v for t in filled for v in t} - set(hole)
    keep = np.array([v for v in range(reference.shape[0]) if v not in only_filled])
    tri = keep[np.asarray(Delaunay(reference[keep]).simplices, dtype=np.int32)]
    if len(hole):
        inside = inside_polygon(reference[tri].mean(axis=1), reference[list(hole)])
        tri = np.concatenate([tri[~inside], np.asarray(filled, dtype=np.int32).reshape(-1, 3)])
    tri = tri.astype(np.int32)
    groups = [set(g) for g in under]
    inside = np.array([any(set(t.tolist()) <= g for g in groups) for t in tri])
    order = np.concatenate([np.nonzero(inside)[0], np.nonzero(~inside)[0]]).astype(np.int32)
    return tri, order


def affines(triangles: I32, source: F64, dest: F64) -> tuple[F64, npt.NDArray[np.bool_]]:
    """[K, 2, 3] maps from destination to source pixel coordinates, and which triangles have any area."""
    d = dest[triangles]  # [K, 3, 2]
    s = source[triangles]
    dm = np.concatenate([d, np.ones((*d.shape[:2], 1))], axis=2)  # [K, 3, 3] rows (x, y, 1)
    det = np.linalg.det(dm)
    ok: npt.NDArray[np.bool_] = np.abs(det) > MIN_AREA
    safe = np.where(ok[:, None, None], dm, np.eye(3)[None])
    out: F64 = np.asarray(np.linalg.solve(safe, s), np.float64).transpose(0, 2, 1)  # solve dm @ A^T = s
    return out, ok


def map_points(matrices: F64, tri_ids: npt.NDArray[np.integer], points: F64) -> F64:
    """Source coordinates of destination ``points`` [N, 2] through the triangles ``tri_ids`` [N]."""
    m = matrices[np.asarray(tri_ids)]
    out: F64 = np.einsum("nij,nj->ni", m, np.concatenate([points, np.ones((points.shape[0], 1))], axis=1))
    return out


class PiecewiseAffine:
    """Dense destination-to-source maps for one mesh."""

    def __init__(self, triangles: I32, order: I32) -> None:
        self.triangles = triangles
        self.order = order

    def maps(self, source: F64, dest: F64, roi: tuple[int, int, int, int]) -> tuple[F32, F32, npt.NDArray[np.bool_]]:
        """``map_x``, ``map_y`` (source px for each destination pixel of ``roi`` = x0, y0, x1, y1) and the pixels
        some triangle covers; feed the maps to ``cv2.remap``."""
        x0, y0, x1, y1 = roi
        mats, ok = affines(self.triangles, source, dest)
        ids = np.zeros((y1 - y0, x1 - x0), np.int32)
        corners = np.round((dest[self.triangles] - (x0, y0)) * (1 << SHIFT)).astype(np.int32)
        for k in self.order:
            if ok[k]:
                cv2.fillConvexPoly(ids, corners[k], int(k) + 1, cv2.LINE_8, SHIFT)
        covered = ids > 0
        table = np.concatenate([np.full((1, 6), -1.0), mats.reshape(-1, 6)]).astype(np.float32)
        table[0, :2] = table[0, 3:5] = 0.0  # uncovered pixels sample (-1, -1): outside, never copied
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        c = [np.take(table[:, j], ids) for j in range(6)]
        map_x = c[0] * xs + c[1] * ys + c[2]
        map_y = c[3] * xs + c[4] * ys + c[5]
        return map_x, map_y, covered


def similarity(source: F64, dest: F64) -> F64:
    """The least-squares similarity (rotation, uniform scale, translation) from ``source`` to ``dest`` as [2, 3]."""
    zs = source[:, 0] + 1j * source[:, 1]
    zd = dest[:, 0] + 1j * dest[:, 1]
    ms, md = zs.mean(), zd.mean()
    a = np.sum((zd - md) * np.conj(zs - ms)) / max(1e-12, float(np.sum(np.abs(zs - ms) ** 2)))
    b = md - a * ms
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])
