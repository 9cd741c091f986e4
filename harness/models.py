"""Encoders and decoders of the paper's MNIST architecture (Appendix 7.4.2), from explicit sizes."""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from harness import lowrank
from harness.lowrank import LowRank

HIDDEN = (500, 300)


PRECISIONS = ("fp32", "bf16")


class MixedPrecisionMLP(nn.Sequential):
    """Runs its layers under bfloat16 autocast and hands back float32: the networks' matmuls
    run at bf16 speed (2-3x fp32 on CPUs with AVX512-BF16 and on GPUs) while weights, Adam
    state and every objective's arithmetic keep their own precision. Same parameters and
    state_dict keys as the float32 `nn.Sequential`.

    With `fp32_output` the last layer runs in float32 instead: an encoder's outputs are what
    the CCA objectives and metrics whiten, and bf16's 8-bit mantissa would quantise them (at
    d = 1000 that noise cost DCCA 2.6 held-out correlation and 11 recognition points in the
    quick profile). Decoders keep bf16 outputs: a reconstruction only enters an MSE."""

    def __init__(self, *layers: nn.Module, fp32_output: bool = False):
        super().__init__(*layers)
        self.fp32_output = fp32_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = list(self)
        last = layers.pop() if self.fp32_output else None
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            for layer in layers:
                x = layer(x)
        return x.float() if last is None else last(x.float())


def mlp(sizes: list[int], precision: str = "fp32", fp32_output: bool = False) -> nn.Sequential:
    """Linear layers with ReLU between them and no activation after the last. `fp32_output`
    (bf16 only): compute the last layer in float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if precision == "bf16":
        return MixedPrecisionMLP(*layers, fp32_output=fp32_output)
    return nn.Sequential(*layers)


def apply_mlp(net: nn.Sequential, x):
    """net(x); for factors x = P Vᵀ (`LowRank`) the first layer reads the factors,
    x Wᵀ + b = P (W V)ᵀ + b: m·k·o + o·d·k multiply-adds instead of m·d·o, and the m × d batch
    is never formed (DCCAE's decoders at large d)."""
    if not isinstance(x, LowRank):
        return net(x)
    first, *rest = list(net)
    mixed = isinstance(net, MixedPrecisionMLP)
    if mixed and net.fp32_output:
        raise ValueError("apply_mlp: a factored input needs a network without an fp32 last layer")
    with torch.autocast(x.coords.device.type, dtype=torch.bfloat16, enabled=mixed):
        y = F.linear(x.coords, first.weight @ x.basis, first.bias)
        for layer in rest:
            y = layer(y)
    return y.float() if mixed else y


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX): elsewhere torch
    emulates it, and a bf16 network trains about ten times slower than in fp32."""
    cpu = torch.cpu
    return any(getattr(cpu, name, lambda: False)()
               for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def encoder(p: int, d: int, hidden=HIDDEN, precision: str = "fp32") -> nn.Sequential:
    return mlp([p, *hidden, d], precision, fp32_output=True)


def decoder(d: int, p: int, hidden=HIDDEN, precision: str = "fp32") -> nn.Sequential:
    return mlp([d, *reversed(hidden), p], precision)


class TwoViewModel(nn.Module):
    """f1, f2 (one encoder per view), optional BN on their outputs, optional decoders.

    `forward` returns the raw encoder outputs f_i(h_i); `represent` the representations the
    metrics use (BN(f_i(h_i)) when the method whitens its outputs; σ(f_i(h_i)) for a sigmoid
    code, CorrNet's original).
    """

    def __init__(self, p1: int, p2: int, d: int, batchnorm: bool = False,
                 decoders: str | None = None, hidden=HIDDEN, precision: str = "fp32",
                 code_activation: str | None = None, factored: bool = True):
        super().__init__()
        # whether `outputs`/`represent` may hand back factors where they pay (False: the m × d
        # outputs at every d, the reference path of the factored one; a trial's `factored`)
        self.factor = factored
        if code_activation not in (None, "sigmoid"):
            raise ValueError(f"unknown code activation {code_activation!r}; use None or 'sigmoid'")
        self.code = torch.sigmoid if code_activation == "sigmoid" else (lambda f: f)
        self.code_activation, self.d, self.hidden = code_activation, d, tuple(hidden)
        self.enc1, self.enc2 = encoder(p1, d, hidden, precision), encoder(p2, d, hidden, precision)
        self.bn1 = nn.BatchNorm1d(d, affine=False) if batchnorm else nn.Identity()
        self.bn2 = nn.BatchNorm1d(d, affine=False) if batchnorm else nn.Identity()
        if decoders == "views":
            self.dec1 = decoder(d, p1, hidden, precision)
            self.dec2 = decoder(d, p2, hidden, precision)
        elif decoders == "joint":
            self.dec = decoder(d, p1 + p2, hidden, precision)
        elif decoders is not None:
            raise ValueError(f"unknown decoder layout {decoders!r}")

    @classmethod
    def for_method(cls, spec, p1: int, p2: int, d: int, hidden=None,
                   precision: str = "fp32", factored: bool = True) -> "TwoViewModel":
        """The networks a registered method trains (its `harness.registry.TwoView`: BN,
        decoders, code activation). `hidden` None: the method's own widths where it has them,
        else HIDDEN."""
        two_view = spec.two_view
        if hidden is None:
            hidden = HIDDEN if two_view.hidden is None else two_view.hidden
        return cls(p1, p2, d, batchnorm=two_view.batchnorm, decoders=two_view.decoders,
                   hidden=hidden, precision=precision, code_activation=two_view.code_activation,
                   factored=factored)

    def forward(self, h1: torch.Tensor, h2: torch.Tensor):
        return self.enc1(h1), self.enc2(h2)

    def represent(self, h1: torch.Tensor, h2: torch.Tensor, factored: bool = False):
        """BN/code of the outputs; with `factored`, `harness.lowrank.LowRank` pairs where that
        is cheaper (see `outputs`) and the representation is linear in them (no sigmoid code)."""
        f1, f2 = self.outputs(h1, h2, factored and self.code_activation is None)
        if isinstance(f1, LowRank):
            return tuple(lowrank.batchnorm(f, bn) if isinstance(bn, nn.BatchNorm1d) else f
                         for f, bn in ((f1, self.bn1), (f2, self.bn2)))
        return self.code(self.bn1(f1)), self.code(self.bn2(f2))

    def factors_pay(self, above: float = 1.0) -> bool:
        """Whether d exceeds `above` × k, the factors' width (last hidden width + 1). Past k the
        Gram-type algebra of the objectives is cheaper from the factors (above = 1); an
        objective whose terms cost more per factor column asks for a larger `above`."""
        return bool(self.hidden) and self.d > above * (self.hidden[-1] + 1)

    def outputs(self, h1: torch.Tensor, h2: torch.Tensor, factored: bool = False):
        """f1, f2 as `forward`; with `factored`, as `LowRank` factors of the last layer (the
        same values, harness/lowrank.py) when d exceeds the last hidden width + 1 in training,
        where the objectives' d × d algebra is cheaper from the factors."""
        if not (factored and self.factor and self.training and self.factors_pay()):
            return self(h1, h2)
        return tuple(lowrank.factor_linear_output(enc[:-1], enc[-1], h)
                     for enc, h in ((self.enc1, h1), (self.enc2, h2)))
