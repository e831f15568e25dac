"""SkateFormer's relative-position-bias lookup under both index rules, against expectations built another way.

The "reference" rule is written here from the reference code's recipe, not from ``bias_index``: it builds the
[P0, P0] table of frame offsets and *tiles* it over the window's P0*P1 tokens (numpy ``tile``), which is what
``.repeat`` on the reference's 5-D tensor does; types 3-4 read the first 2G-1 rows. The "centred" rule spreads each
frame over its P1 landmarks (``kron``) and centres types 3-4 on G_max - 1.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from trainer.models import skateformer
from trainer.models.skateformer import PARTITION_TYPES, PartitionAttention

pytestmark = pytest.mark.unit


def _expected_rows(kind: int, cfg: skateformer.SkateFormerConfig) -> np.ndarray:
    """The flattened table row used for every (query token, key token) pair of one window."""
    p0 = cfg.segment_len if kind in (1, 2) else cfg.global_tokens
    p1 = cfg.points_per_region if kind in (1, 3) else cfg.regions
    offsets = np.subtract.outer(np.arange(p0), np.arange(p0))  # [p0, p0]: frame of query minus frame of key
    if cfg.bias_index == "reference":
        start = p0 - 1  # types 1-2: L - 1; types 3-4: the first 2G - 1 rows of the table
        frames = np.tile(offsets, (p1, p1)) if kind in (1, 3) else np.kron(offsets, np.ones((p1, p1), int))
    else:
        start = p0 - 1 if kind in (1, 2) else cfg.bias_global_tokens - 1
        frames = np.kron(offsets, np.ones((p1, p1), int))
    rows = frames + start
    if kind in (1, 3):
        return rows
    m = cfg.regions
    pair = np.add.outer(np.tile(np.arange(p1), p0) * m, np.tile(np.arange(p1), p0))  # (region_a, region_b) -> a*m+b
    return rows * m * m + pair


@pytest.mark.parametrize("t_p", [64, 128, 256])
@pytest.mark.parametrize("rule", ["reference", "centred"])
@pytest.mark.parametrize("kind", PARTITION_TYPES)
def test_bias_lookup_matches_the_rule_built_independently(t_p: int, rule: str, kind: int) -> None:
    cfg = dataclasses.replace(skateformer.paper(t_p), bias_index=rule)
    torch.manual_seed(t_p + kind)
    attn = PartitionAttention(kind, 32, 4, cfg)
    rows = _expected_rows(kind, cfg)
    assert torch.equal(attn.bias_index, torch.from_numpy(rows))  # type: ignore[arg-type]
    # and the bias the attention adds is the table read at those rows
    table = attn.bias_table.detach().reshape(-1, 4)
    n = rows.shape[0]
    got = table[attn.bias_index.reshape(-1)].reshape(n, n, 4)  # type: ignore[union-attr]
    want = table.numpy()[rows.reshape(-1)].reshape(n, n, 4)
    np.testing.assert_array_equal(got.numpy(), want)
    assert rows.min() >= 0 and rows.max() < table.shape[0]


@pytest.mark.parametrize("t_p", [64, 128, 256])
def test_the_two_rules_really_differ_where_the_reference_tiles_or_shifts(t_p: int) -> None:
    def rows(kind: int, rule: str) -> np.ndarray:
        return _expected_rows(kind, dataclasses.replace(skateformer.paper(t_p), bias_index=rule))

    # types 1 and 3: the tiled time index disagrees with the frame index on most pairs
    for kind in (1, 3):
        assert (rows(kind, "reference") != rows(kind, "centred")).mean() > 0.85
    assert np.array_equal(rows(2, "reference"), rows(2, "centred"))  # type 2 is the same under both
    # type 4: the row offset G - 1 equals G_max - 1 only at T_p = 256
    same4 = np.array_equal(rows(4, "reference"), rows(4, "centred"))
    assert same4 == (t_p == 256)


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="bias_index"):
        dataclasses.replace(skateformer.paper(), bias_index="tiled").validate()
