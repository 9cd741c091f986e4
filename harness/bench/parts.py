"""Where a factored Deep CCA step's objective time goes, stage by stage, against the
networks' floor (the lower bound behind BENCHMARKS.md "Large d": why d = 500 stays above 1.3×).

    python -m harness.bench.parts [--d 500] [--threads 2] [--repeats 10]

Times the stages of `baselines.dcca.FactoredTraceNormCorrelation.forward` (value and gradient,
float64 as the direct path) on random factors of the paper's shapes (batch 2048, k = 301),
one stage at a time with the same calls, and the float32 last-layer product m × k × d the
floor pays and the factored path skips. Milliseconds per step, median of --repeats.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from baselines.dcca import gradient_kernel, trace_norm_core
from harness.common import whole_number
from harness.linalg import ThinQR, center, ridge_cov
from harness.models import HIDDEN


FLOOR_STAGE = "floor's last layer: 3 m x k x d per view (float32)"


def stage_times(d: int, m: int, k: int, repeats: int) -> dict:
    p1, p2, v1, v2 = torch.randn(m, k), torch.randn(m, k), torch.randn(d, k), torch.randn(d, k)
    times: dict[str, list[float]] = {}

    def stage(name, fn):
        start = time.perf_counter()
        out = fn()
        times.setdefault(name, []).append((time.perf_counter() - start) * 1e3)
        return out

    for _ in range(repeats + 1):  # the first round warms up and is dropped below
        p1c, p2c = stage("centre (float64)", lambda: (center(p1.double()), center(p2.double())))
        qr1, qr2 = stage("R of both d x k bases (Cholesky of V'V)", lambda: (
            ThinQR.of(v1.double()), ThinQR.of(v2.double())))
        r1, r2 = qr1.r, qr2.r
        c11, c22, c12 = stage("three m x k x k Grams",
                              lambda: (ridge_cov(p1c), ridge_cov(p2c), ridge_cov(p1c, p2c)))
        s = stage("k x k moments R C R'",
                  lambda: (r1 @ c11 @ r1.T, r2 @ c22 @ r2.T, r1 @ c12 @ r2.T))
        _, a, sig, b = stage("Cholesky x2, solves, k x k SVD", lambda: trace_norm_core(*s, 1e-3))
        a_t, b_t, kernel = stage("gradient kernel 2k x 2k",
                                 lambda: gradient_kernel(a, sig, b, r1, r2))
        stage("gradient wrt P: m x 2k x 2k (float32)",
              lambda: torch.cat([p1c, p2c], 1).float() @ kernel.float())
        stage("gradient wrt V: k x k x k, d x k x k", lambda: (
            qr1.q_times(a @ (-sig[:, None] * (a_t.T @ c11) + b_t.T @ c12.T)),
            qr2.q_times(b @ (-sig[:, None] * (b_t.T @ c22) + a_t.T @ c12))))
        stage(FLOOR_STAGE, lambda: [p @ v.T for p in (p1, p2) for v in (v1, v1, v1)])
    return {name: statistics.median(t[1:]) for name, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.parts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=500)
    parser.add_argument("--threads", type=whole_number(1), default=None)
    parser.add_argument("--repeats", type=whole_number(1), default=10)
    args = parser.parse_args(argv)
    if args.d <= HIDDEN[-1]:
        parser.error(f"--d {args.d}: the factored path runs only above the last hidden width "
                     f"{HIDDEN[-1]}")
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = stage_times(args.d, m=2048, k=HIDDEN[-1] + 1, repeats=args.repeats)
    for name, ms in parts.items():
        print(f"{name:<56} {ms:7.2f} ms")
    objective = sum(ms for name, ms in parts.items() if name != FLOOR_STAGE)
    print(f"{'objective, all stages':<56} {objective:7.2f} ms   (d = {args.d}, "
          f"{torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
