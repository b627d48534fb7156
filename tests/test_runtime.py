"""The allocator setting the inspector's commands apply: freed tensor memory is reused, not
faulted in afresh from the kernel on every batch."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import resource, sys, torch
from inspector.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "on" else False
conv, x = torch.nn.Conv2d(3, 16, 3, padding=1), torch.randn(8, 3, 256, 256)
def batch():  # a 32 MB activation, freed after each batch
    with torch.inference_mode():
        return conv(x).relu().mean()
batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    batch()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    applied, n = out.split()
    return applied == "True", int(n)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    applied, with_it = faults("on")
    _, without = faults("off")
    assert applied
    assert without > 5 * 8_000 // 2  # the 32 MB block comes back from the kernel page by page each time
    assert with_it < without // 20
