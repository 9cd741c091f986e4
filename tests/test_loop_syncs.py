"""The training loop is ready for a GPU: no host–device synchronisation per step.

Counted on the CPU with the profiler: `aten::_local_scalar_dense` is what every `.item()`,
`float(t)`, `int(t)` or `bool(t)` of a tensor runs (on a GPU, a sync). Adam's step counters are
CPU tensors even on a GPU (`capturable=False`), so its reads are not device syncs and are
counted apart. The only syncs left inside a loss are PyTorch's own error checks of the linear
algebra (each `cholesky`, `svd`, `eigh` reads its `info`), listed per method below, and, at d
above the hidden width (factored outputs), `linalg.ThinQR`'s choice of route, one per view."""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from harness import registry
from harness.loop import batches, train_epoch
from harness.models import TwoViewModel

# decompositions per step whose error check syncs (DCCA: 2 Cholesky + 1 SVD; SDCCA: 2 eigh)
LINALG_CHECKS_PER_STEP = {"dcca": 3, "dccae": 3, "sdcca": 2}
# factored (d = 20 > 16 + 1): ThinQR's route per view, and SDCCA whitens by the batch (ρ = 0)
# with its k × k eigh per view
FACTORED_CHECKS_PER_STEP = {"dcca": 5, "dccae": 5, "sdcca": 4}
GRADIENT_METHODS = [m for m in registry.list_methods() if registry.get(m).two_view is not None
                    and registry.get(m).two_view.objective is not None]


class TimedAdam(torch.optim.Adam):
    def step(self, closure=None):
        with record_function("OPTIMIZER"):
            return super().step(closure)


def _syncs_by_region(name: str, steps: int = 4, d: int = 6):
    spec = registry.get(name)
    torch.manual_seed(0)
    h1, h2 = torch.randn(steps * 64, 24), torch.randn(steps * 64, 24)
    model = TwoViewModel(24, 24, d, batchnorm=spec.two_view.batchnorm,
                         decoders=spec.two_view.decoders, hidden=(16,))
    state, params = spec.two_view.fresh_state(d), spec.params()
    optimizer = TimedAdam(model.parameters(), lr=1e-3)

    def loss(a, b):
        with record_function("LOSS"):
            return spec.two_view.objective(model, a, b, state, params)

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_epoch(optimizer, loss, batches((h1, h2), torch.randperm(len(h1)), 64))
    events = prof.events()
    regions = {r: [(e.time_range.start, e.time_range.end) for e in events if e.name == r]
               for r in ("LOSS", "OPTIMIZER")}
    counts = {"LOSS": 0, "OPTIMIZER": 0, "loop": 0}
    for e in events:
        if e.name != "aten::_local_scalar_dense":
            continue
        where = next((r for r, spans in regions.items()
                      if any(s <= e.time_range.start <= t for s, t in spans)), "loop")
        counts[where] += 1
    return counts, steps


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_an_epoch_reads_no_device_value_per_step_but_the_linalg_error_checks(name):
    counts, steps = _syncs_by_region(name)
    assert counts["loop"] == 0, counts  # the loop itself: batching, term sums
    assert counts["LOSS"] == steps * LINALG_CHECKS_PER_STEP.get(name, 0), counts  # backward too


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_factored_outputs_add_no_device_read_but_the_choice_of_qr_route(name):
    counts, steps = _syncs_by_region(name, steps=2, d=20)
    assert counts["loop"] == 0, counts
    assert counts["LOSS"] == steps * FACTORED_CHECKS_PER_STEP.get(name, 0), counts
