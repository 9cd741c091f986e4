"""Objectives on factored outputs (harness/lowrank.py) against the direct computation.

At d above the last hidden width the model hands the objectives `LowRank` factors of its
outputs. Every identity is checked against the dense matrices, and every registered two-view
objective against its direct path (`TwoViewModel.factor = False`, the reference) on random
float64 networks: the same loss, terms, gradients of every parameter, objective state and
BatchNorm running statistics to float64 round-off, also with duplicated output columns and
with (near-)repeated canonical correlations."""
import copy

import pytest
import torch

from harness import lowrank, registry
from harness.lowrank import LowRank
from harness.models import TwoViewModel

torch.set_default_dtype(torch.float32)
RTOL = 1e-9


def random_lowrank(m=50, d=30, k=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return LowRank(torch.randn(m, k, generator=g, dtype=torch.float64),
                   torch.randn(d, k, generator=g, dtype=torch.float64))


def close(a, b, rtol=RTOL, scale=None):
    """max |a − b| ≤ rtol · scale, scale = max |b| unless given (a tensor whose true value is
    0, e.g. a bias gradient through a centring, is compared on the scale of its siblings)."""
    scale = scale if scale is not None else float(torch.as_tensor(b).abs().max())
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max()) <= rtol * max(scale, 1e-300)


def test_factored_identities_equal_the_dense_matrices():
    a, b, c, e = (random_lowrank(seed=s) for s in range(4))
    A, B, C, E = a.full(), b.full(), c.full(), e.full()
    assert close(lowrank.gram(a, b), A.T @ B)
    assert close(lowrank.diag_gram(a, b), torch.diagonal(A.T @ B))
    assert close(lowrank.gram_inner(a, b, c, e), ((A.T @ B) * (C.T @ E)).sum())
    s = A.T @ B / 50
    assert close(lowrank.off_diagonal_sq(a, b, 1 / 50), s.pow(2).sum() - torch.diagonal(s).pow(2).sum())
    assert close(lowrank.off_diagonal_sq(A, B, 1 / 50), lowrank.off_diagonal_sq(a, b, 1 / 50))
    assert close(lowrank.sq_norm(a), A.pow(2).sum())
    assert close(lowrank.difference(a, b).full(), A - B)
    assert close(lowrank.centered(a).full(), A - A.mean(0))
    assert close(a[10:20].full(), A[10:20])


def test_coordinates_are_an_isometry_of_the_outputs():
    z = random_lowrank(d=30, k=7)
    p = lowrank.coordinates(z)
    assert p.shape == (50, 7)
    full = z.full()
    assert close(p @ p.T, full @ full.T)  # all pairwise inner products of the rows kept


def test_factored_batchnorm_matches_batchnorm1d_and_its_running_statistics():
    z = random_lowrank(d=30, k=7)
    bn_ref = torch.nn.BatchNorm1d(30, affine=False).double()
    bn = copy.deepcopy(bn_ref)
    for _ in range(2):
        ref = bn_ref(z.full())
        out = lowrank.batchnorm(z, bn)
        assert close(out.full(), ref)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(bn, name), getattr(bn_ref, name)) or close(
            getattr(bn, name), getattr(bn_ref, name)), name


def two_view_methods():
    return [m for m in registry.list_methods()
            if registry.get(m).two_view is not None
            and registry.get(m).two_view.objective is not None]


def model_and_batches(spec, d, twin=False, duplicate=False, seed=0):
    torch.manual_seed(seed)
    two_view = spec.two_view
    model = TwoViewModel(10, 10, d, batchnorm=two_view.batchnorm, decoders=two_view.decoders,
                         hidden=two_view.hidden or (24, 9),
                         code_activation=two_view.code_activation).double()
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(128, 4, generator=g, dtype=torch.float64)
    h1 = shared @ torch.randn(4, 10, generator=g, dtype=torch.float64) + 0.3 * torch.randn(
        128, 10, generator=g, dtype=torch.float64)
    h2 = shared @ torch.randn(4, 10, generator=g, dtype=torch.float64) + 0.3 * torch.randn(
        128, 10, generator=g, dtype=torch.float64)
    with torch.no_grad():
        if twin:  # the same network on the same inputs: canonical correlations all ≈ 1
            model.enc2.load_state_dict(model.enc1.state_dict())
            h2 = h1 + 1e-3 * torch.randn(128, 10, generator=g, dtype=torch.float64)
        if duplicate:  # outputs 0 and 1 of each view identical
            for enc in (model.enc1, model.enc2):
                enc[-1].weight[1] = enc[-1].weight[0]
                enc[-1].bias[1] = enc[-1].bias[0]
    return model, [(h1[:64], h2[:64]), (h1[64:], h2[64:])]


def run_steps(spec, model, batches, params):
    """Two steps of the objective: each step's detached terms and parameter gradients."""
    state = {k: v.double() if v.is_floating_point() else v.clone()
             for k, v in spec.two_view.fresh_state(model.d).items()}
    out = []
    for h1, h2 in batches:
        model.zero_grad()
        terms = spec.two_view.objective(model, h1, h2, state, params)
        terms["loss"].backward()
        out.append(({k: v.detach().double() for k, v in terms.items() if torch.is_tensor(v)},
                    {n: q.grad.clone() for n, q in model.named_parameters() if q.grad is not None}))
    return out, state, {k: v.clone() for k, v in model.state_dict().items() if "running" in k}


@pytest.mark.parametrize("case", ["random", "duplicated columns", "repeated correlations"])
@pytest.mark.parametrize("method", two_view_methods())
def test_every_objective_on_factors_equals_its_direct_computation(method, case):
    params = registry.get(method).params()
    if "rho" in params:
        params["rho"] = 0.5  # running statistics that mix two steps (Soft CCA's α is 0.9)
    assert_factored_equals_direct(method, case, params)


@pytest.mark.parametrize("case", ["random", "duplicated columns", "repeated correlations"])
def test_sdcca_whitening_by_the_batch_on_factors_equals_its_direct_computation(case):
    """ρ = 0 (the default) whitens by the batch in the span of the outputs (k × k eigh)."""
    params = registry.get("sdcca").params()
    params["rho"] = 0.0
    assert_factored_equals_direct("sdcca", case, params)


def assert_factored_equals_direct(method, case, params):
    spec = registry.get(method)
    model, batches = model_and_batches(spec, d=40, twin=case == "repeated correlations",
                                       duplicate=case == "duplicated columns")
    if "ridge" in params:
        params["ridge"] = 1e-3  # duplicated columns: a rank-deficient Σ needs the ridge
    reference = copy.deepcopy(model)
    reference.factor = False
    factored_steps, state, running = run_steps(spec, model, batches, params)
    direct_steps, state_ref, running_ref = run_steps(spec, reference, batches, params)
    for (terms, grads), (terms_ref, grads_ref) in zip(factored_steps, direct_steps):
        assert terms.keys() == terms_ref.keys()
        for key in terms:  # a term's round-off is on the scale of the loss it adds to: the
            # factored ‖z1 − z2‖² is ‖z1‖² + ‖z2‖² − 2⟨z1, z2⟩, exact up to round-off of those
            scale = max(float(terms_ref[key].abs().max()), float(terms_ref["loss"].abs()))
            assert close(terms[key], terms_ref[key], RTOL, scale), (key, terms[key], terms_ref[key])
        assert grads.keys() == grads_ref.keys()
        scale = max(float(g.abs().max()) for g in grads_ref.values())
        for name in grads:
            assert close(grads[name], grads_ref[name], 1e-9, scale), name
    for key in state:
        assert close(state[key].double(), state_ref[key].double()), key
    for key in running:
        assert close(running[key].double(), running_ref[key].double()), key


def test_the_model_factors_only_where_it_is_cheaper_and_only_in_training():
    model = TwoViewModel(10, 10, 40, hidden=(24, 9))
    h = torch.randn(8, 10)
    assert isinstance(model.outputs(h, h, factored=True)[0], LowRank)  # d = 40 > 9 + 1
    assert torch.is_tensor(model.outputs(h, h)[0])  # not asked
    model.eval()
    assert torch.is_tensor(model.outputs(h, h, factored=True)[0])
    small = TwoViewModel(10, 10, 10, hidden=(24, 9))
    assert torch.is_tensor(small.outputs(h, h, factored=True)[0])  # d ≤ k: the direct path
    model.train()
    f1, f2 = model.outputs(h, h, factored=True)
    g1, g2 = model(h, h)
    assert torch.allclose(f1.full(), g1, atol=1e-6) and torch.allclose(f2.full(), g2, atol=1e-6)


@pytest.mark.parametrize("d, factored", [(15, False), (25, True)])
def test_muc2m_regu_takes_factors_only_from_twice_their_width(d, factored, factoring_calls):
    """k = 10: MUC2M's common loss factors past k, but with the contractive penalty (whose
    score is differentiated twice) only past 2k (`REGU_FACTORS_ABOVE`); γ = 0 past k."""
    calls = factoring_calls
    spec = registry.get("muc2m_regu")
    model = TwoViewModel(10, 10, d, batchnorm=True, hidden=(24, 9)).double()
    h = torch.randn(32, 10, dtype=torch.float64)
    spec.two_view.objective(model, h, h + 0.1, {}, spec.params())["loss"].backward()
    assert bool(calls) == factored
    calls.clear()
    spec.two_view.objective(model, h, h + 0.1, {}, {**spec.params(), "gamma": 0.0})
    assert calls  # without the penalty, d > k is enough


def mm_shapes(run) -> list:
    """The input shapes of every aten::mm that `run()` calls (a transposed operand appears with
    its transposed shape: Pᵀ of an m × k P is [k, m])."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run()
    return [[list(s) for s in e.input_shapes[:2]] for e in prof.events() if e.name == "aten::mm"]


def test_muc2m_common_loss_takes_each_gram_of_the_factors_once():
    """MUC2M's step on factors (represent: BatchNorm, then common_loss) asks for P₁ᵀP₁ four
    times: the BatchNorm variance, twice in ‖Z₁ᵀZ₁‖² (gram_inner's M and N) and in the diagonal
    of Z₁ᵀZ₁; likewise P₂ᵀP₂, and P₁ᵀP₂ once (the diagonal of C). Memoized, the forward takes
    each of the 3 distinct products [k, m] × [m, k] once (the diagonal of Zᵢᵀ Zᵢ is BatchNorm's
    m var/(var + eps): no product at all), where it used to take 9. Back-propagated once each,
    they cost 4 products [m, k] × [k, k] (P(G + Gᵀ) for each of the two self-Grams, one per
    factor for P₁ᵀP₂), where it used to take 18. On the basis side the forward takes V₁ᵀV₁ and
    V₂ᵀV₂ once each ([k, d] × [d, k], was 4) and 3 products [d, k] × [k, k] (V M for the two
    variances and the diagonal of C, was 5). m = 32, k = 10, d = 40 and the inputs' 7 are
    distinct, so no other product (the networks' backward) has these shapes."""
    from muc2m.common import common_loss
    m, k, d = 32, 10, 40
    torch.manual_seed(0)
    model = TwoViewModel(7, 7, d, batchnorm=True, hidden=(24, k - 1)).double()
    h1, h2 = torch.randn(m, 7, dtype=torch.float64), torch.randn(m, 7, dtype=torch.float64)
    out = {}
    forward = mm_shapes(lambda: out.update(common_loss(*model.represent(h1, h2, factored=True))))
    backward = mm_shapes(lambda: out["loss"].backward())
    assert forward.count([[k, m], [m, k]]) == 3
    assert backward.count([[m, k], [k, k]]) == 4
    assert forward.count([[k, d], [d, k]]) == 2
    assert forward.count([[d, k], [k, k]]) == 3


def test_sdcca_factored_step_takes_three_batch_grams_and_no_product_in_its_backward():
    """SDCCA at ρ = 0 on factors (`FactoredBatchWhitenedLoss`): the whitening's Pc₁ᵀPc₁ and
    Pc₂ᵀPc₂ and the one cross Gram Pc₁ᵀPc₂ are all the [k, m] × [m, k] products a step takes
    (the loss on factored targets took 6), V₁ᵀV₁, V₂ᵀV₂ (the thin QRs) and V₁ᵀV₂ all its
    [k, d] × [d, k] (it took 8), and its backward multiplies by saved gradients only."""
    m, k, d = 32, 10, 40
    spec = registry.get("sdcca")
    torch.manual_seed(0)
    model = TwoViewModel(7, 7, d, hidden=(24, k - 1)).double()
    h1, h2 = torch.randn(m, 7, dtype=torch.float64), torch.randn(m, 7, dtype=torch.float64)
    out = {}
    params = {**spec.params(), "rho": 0.0}
    forward = mm_shapes(lambda: out.update(spec.two_view.objective(
        model, h1, h2, spec.two_view.fresh_state(d), params)))
    backward = mm_shapes(lambda: out["loss"].backward())
    assert forward.count([[k, m], [m, k]]) == 3
    assert forward.count([[k, d], [d, k]]) == 3
    assert [[m, k], [k, k]] not in backward and [[d, k], [k, k]] not in backward


def test_memoized_grams_keep_their_gradient():
    """A Gram first taken without gradient is not handed to a loss that needs one, and under
    autocast the self-Gram falls back to plain autograd (bf16 product, float32 factors)."""
    z = random_lowrank()
    z.coords.requires_grad_(True)
    with torch.no_grad():
        lowrank.sq_norm(z)
    lowrank.sq_norm(z).backward()
    assert close(z.coords.grad, 2 * z.full().detach() @ z.basis)
    z = LowRank(z.coords.detach().float().requires_grad_(True), z.basis.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        norm = lowrank.sq_norm(z)
    norm.backward()
    assert norm.dtype == torch.bfloat16 and z.coords.grad.dtype == torch.float32


def test_an_mlp_reads_factors_through_its_first_layer():
    """apply_mlp(net, P Vᵀ) = net(P Vᵀ): exactly in float64, and within bf16 round-off for a
    mixed-precision decoder (whose first layer then multiplies P by W V under autocast)."""
    from harness.models import apply_mlp, decoder
    z = random_lowrank(m=64, d=30, k=7)
    torch.manual_seed(0)
    net = decoder(30, 12, hidden=(16, 8)).double().requires_grad_(False)
    assert close(apply_mlp(net, z), net(z.full()))
    assert close(apply_mlp(net, z.full()), net(z.full()))  # a plain tensor: net itself
    mixed = decoder(30, 12, hidden=(16, 8), precision="bf16").requires_grad_(False)
    z32 = z.to(torch.float32)
    got, want = apply_mlp(mixed, z32), mixed(z32.full())
    assert got.dtype == torch.float32
    assert close(got, want, rtol=3e-2)


def test_factored_cosine_score_and_its_input_gradients_equal_the_dense_ones():
    """MUC2M w/ regu differentiates the cosine score twice: on factors, the same score, input
    gradients and second-order gradients as on the m × d batch."""
    from muc2m.scores import cosine_score
    g = torch.Generator().manual_seed(3)
    h = torch.randn(40, 6, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.randn(6, 7, generator=g, dtype=torch.float64)
    v1, v2 = (torch.randn(30, 7, generator=g, dtype=torch.float64, requires_grad=True)
              for _ in range(2))
    results = []
    for factored in (True, False):
        p = torch.tanh(h @ a)
        z1, z2 = LowRank(p, v1), LowRank(p.flip(0), v2)
        s = cosine_score(z1, z2) if factored else cosine_score(z1.full(), z2.full())
        (gh,) = torch.autograd.grad(s.sum(), h, create_graph=True)
        second = torch.autograd.grad(gh.pow(2).sum(), (v1, v2))
        results.append((s, gh, *second))
    for got, want in zip(*results):
        assert close(got, want)


@pytest.mark.parametrize("method", ["dcca", "dccae", "sdcca"])
def test_float32_factored_gradients_are_as_accurate_as_the_direct_paths(method):
    """In float32 networks the factored Deep CCA and SDCCA (ρ = 0) take their gradient products
    wrt the hidden activations (m × 2k × 2k, m × 2k × k; SDCCA's wrt the last layer's weights
    too) in float32, as the direct path takes its backward through the last layer. Against the same network in float64 (ground truth),
    their parameter gradients are no further off than the direct path's own float32 ones,
    within a factor 3, at float32 level (measured: Deep CCA 0.7–1.6, SDCCA 2.3–2.5; SDCCA's
    earlier factored loss, on float32 Grams of the concatenated factors, 8.4 and failed)."""
    spec = registry.get(method)
    for seed in range(3):
        torch.manual_seed(seed)
        model = TwoViewModel(10, 10, 200, batchnorm=spec.two_view.batchnorm,
                             decoders=spec.two_view.decoders, hidden=(64, 150))
        g = torch.Generator().manual_seed(seed)
        h1, h2 = torch.randn(256, 10, generator=g), torch.randn(256, 10, generator=g)
        truth = copy.deepcopy(model).double()
        truth.factor = False
        direct = copy.deepcopy(model)
        direct.factor = False
        (_, grads_truth), = run_steps(spec, truth, [(h1.double(), h2.double())], spec.params())[0]
        scale = max(float(v.abs().max()) for v in grads_truth.values())
        error = {}
        for name, net in (("factored", model), ("direct", direct)):
            (_, grads), = run_steps(spec, net, [(h1, h2)], spec.params())[0]
            error[name] = max(float((grads[n].double() - grads_truth[n]).abs().max())
                              for n in grads_truth) / scale
        assert error["factored"] <= 3 * error["direct"] and error["factored"] < 1e-4, error
