"""The RG-LRU cannot integrate exactly in real arithmetic: h = a h + sqrt(1 - a^2) x loses the input at a = 1.
This measures, on the real operations (lsrl's RGLRU module, transformers' order of operations), the integrator
constructions one could use for s_t = s_{t-1} + v_t up to T steps:

- "a = 1 - delta": the decay just below 1 and the input scaled by K = 1 / sqrt(1 - a^2) as the dtype computes
  it; in real arithmetic the error is sum_{j < T} (1 - a^j) |v| ~ delta T^2 / 2 |v|;
- "window": log a in the window where exp(log a) rounds to 1 but exp(2 log a) to the float below 1, so
  sqrt(1 - a^2) = 2^-12 (float32; 2^-26 in float64, a rounded through float32) exactly and K = 2^12:
  the float sum itself, exact for integers below 2^24 (2^53).

    python -m bench.bench_hawk_integrator [--out FILE]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from lsrl.backends.hawk import GATE_ON, LOG_A_ONE, RGLRU

from bench.common import table

LENGTHS = (100, 1000, 10000)


def integrate(log_a: float, v: torch.Tensor) -> torch.Tensor:
    """One RG-LRU channel with decay exp(log_a), input scaled by 1 / sqrt(1 - a^2) (no reset: h_0 = 0)."""
    dtype = v.dtype
    lru = RGLRU(1, dtype)
    with torch.no_grad():
        lru.recurrent_param.fill_(math.log(math.expm1(-log_a / 8)))
        lru.input_gate_bias.fill_(GATE_ON)
        lru.recurrent_gate_bias.fill_(GATE_ON)
        _, probe = lru.coefficients(torch.ones(1, 1, 1, dtype=dtype), reset=False)  # the realised multiplier
        return lru(v[..., None] / probe, reset=False)[..., 0]


def rows() -> list[list[object]]:
    out = []
    rng = np.random.default_rng(0)
    for dtype in (torch.float32, torch.float64):
        regimes = [("a = 1 - 1e-3", math.log1p(-1e-3)), ("a = 1 - 1e-6", math.log1p(-1e-6)),
                   ("a = 1 - 2^-24" if dtype == torch.float32 else "a = 1 - 2^-40",
                    math.log1p(-(2.0**-24 if dtype == torch.float32 else 2.0**-40))),
                   ("window", LOG_A_ONE[dtype])]
        for kind, make in (("integers {0, 1}", lambda n: rng.integers(0, 2, n).astype(float)),
                           ("reals [-1, 1]", lambda n: rng.uniform(-1, 1, n))):
            v = torch.tensor(np.stack([make(max(LENGTHS)) for _ in range(4)]), dtype=dtype)
            exact = np.cumsum(v.double().numpy(), axis=1)
            for name, log_a in regimes:
                with torch.no_grad():
                    h = integrate(log_a, v).double().numpy()
                errs = [f"{np.abs(h[:, :T] - exact[:, :T]).max():.2g}" for T in LENGTHS]
                out.append([str(dtype).removeprefix("torch."), kind, name, *errs])
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, help="also write the markdown table to this file")
    args = p.parse_args(argv)
    text = table(["dtype", "inputs", "integrator", *(f"max err T={T}" for T in LENGTHS)], rows())
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
