"""The sequential linear-state recurrence shared by the IR interpreter, the stack interpreter and lrnn."""

from __future__ import annotations


def coupled_components(a) -> list[int]:
    """Indices i whose row or column of the square matrix `a` (numpy or torch) has a nonzero entry: the
    components a recurrence through `a` couples; every other one only passes its drive through."""
    nz = a != 0
    return [i for i, (r, c) in enumerate(zip(nz.any(1).tolist(), nz.any(0).tolist(), strict=True)) if r or c]


def linear_recurrence(drive, a_t, init):
    """s_t = s_{t-1} @ a_t + drive[:, t] for t = 1..T with s_0 = init (a_t = A transposed), all steps stacked.

    `drive` is (batch, time, dim); numpy (float or exact object arrays) and torch tensors alike, since only
    `@`, `+`, `*`, indexing and slice assignment are used. A 1-D `init` broadcasts over the batch at the
    first step.

    Components that A does not couple (their row and column of A are zero: the drive passes straight
    through) are just their drive; the step loop runs over the coupled ones alone, which read nothing else.
    Merged states are mostly such components, and the loop is the cost."""
    coupled = coupled_components(a_t)
    out = drive + 0
    if not coupled:
        return out
    a_c = a_t[coupled][:, coupled]
    s = init[..., coupled]
    for t in range(drive.shape[1]):
        s = s @ a_c + drive[:, t, coupled]
        out[:, t, coupled] = s
    return out
