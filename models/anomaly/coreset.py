"""Greedy k-center coreset (PatchCore): a small subset of patches that still covers every
kind of good patch, so a rare but normal pattern is not later mistaken for a defect."""

from __future__ import annotations

import math

import torch

from models.anomaly.bank import nearest_distance


def greedy_coreset(
    x: torch.Tensor, n: int, project_to: int = 64, seed: int = 0, start: torch.Tensor | None = None
) -> torch.Tensor:
    """Indices [n] of rows of ``x`` [N, D], each the row farthest from those already chosen.

    Distances are taken in a random projection to ``project_to`` dimensions (they are only
    compared, and Johnson-Lindenstrauss keeps them close), as squared norms so that one
    matrix-vector product per step does the work.

    ``start``: rows already chosen (at most ``n``; the greedy goes on from them). Their distances
    to every row come from blocked matrix products instead of one pass over ``x`` per row: the
    cross-fit banks start from the full bank less the held-out parts' patches in a quarter of the time.
    """
    N, D = x.shape
    if n >= N:
        return torch.arange(N, device=x.device)
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = x.float()
    if D > project_to:
        proj = torch.randn(D, project_to, generator=g).to(x.device) / math.sqrt(project_to)
        x = x @ proj  # [N, P]
    sq = (x * x).sum(1)  # [N]
    chosen = torch.empty(n, dtype=torch.long, device=x.device)
    if start is not None and len(start):
        k = min(n, len(start))
        chosen[:k] = start[:k].to(x.device)
        dist = nearest_distance(x, x[chosen[:k]]).square_()
    else:
        k = 1
        chosen[0] = int(torch.randint(N, (1,), generator=g))
        dist = sq - 2 * (x @ x[chosen[0]]) + sq[chosen[0]]  # squared distance to the nearest chosen row
    for i in range(k, n):
        j = torch.argmax(dist)
        chosen[i] = j
        torch.minimum(dist, torch.addmv(sq + sq[j], x, x[j], alpha=-2), out=dist)
    return chosen
