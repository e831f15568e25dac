"""Both model families on a CUDA device give the CPU's scores, and train a step there (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from trainer.bmc import bmc_loss
from trainer.export import example_inputs
from trainer.models import qafenet, trampformer
from trainer.runtime import pick_device

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("build", [lambda: trampformer.TrampFormer(trampformer.small()),
                                   lambda: qafenet.QafeNet(qafenet.small())])  # fmt: skip
def test_cuda_scores_match_cpu_and_a_step_trains(build: object) -> None:
    torch.manual_seed(0)
    model = build().eval()  # type: ignore[operator]
    inputs = list(example_inputs(model, 3)["clip"].values())
    with torch.no_grad():
        cpu = model(*inputs)
        gpu = model.to(pick_device("cuda"))(*[x.cuda() for x in inputs]).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-3)
    model.train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss = bmc_loss(model(*[x.cuda() for x in inputs]), torch.tensor([0.0, 2.0, 4.0], device="cuda"))
    loss.backward()  # type: ignore[no-untyped-call]
    optim.step()
    assert torch.isfinite(loss)
