"""The sequential linear-state recurrence shared by the IR interpreter, the stack interpreter and lrnn."""

from __future__ import annotations


def linear_recurrence(drive, a_t, init):
    """s_t = s_{t-1} @ a_t + drive[:, t] for t = 1..T with s_0 = init (a_t = A transposed), all steps stacked.

    `drive` is (batch, time, dim); numpy (float or exact object arrays) and torch tensors alike, since only
    `@`, `+`, `*` and slice assignment are used. A 1-D `init` broadcasts over the batch at the first step.
    """
    out = drive * 0
    s = init
    for t in range(drive.shape[1]):
        s = s @ a_t + drive[:, t]
        out[:, t] = s
    return out
