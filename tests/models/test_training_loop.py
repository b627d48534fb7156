"""The training loop's arithmetic: denormal numbers are flushed to zero while it trains, so
late epochs (tiny decayed gradients) run as fast as early ones on a CPU."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import torch
from torch import nn
from models.training.loop import TrainConfig, train
from models.types import ClassifierOutput

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
    def forward(self, x):
        logits = self.lin(x)
        return ClassifierOutput(logits, logits[:, 1:].sum(1) - logits[:, 0])

g = torch.Generator().manual_seed(0)
x, y = torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g)
data = [{"x": x[i], "target": y[i], "is_defect": (y[i] > 0).float()} for i in range(32)]
tiny = torch.tensor([1e-40], dtype=torch.float32)
before = (tiny * 1.0).item()
cfg = TrainConfig(epochs=1, batch_size=8, min_steps_per_epoch=1, progress=False)
model = Tiny()
train(model, lambda b: model(b["x"]), data, None, [int(t) for t in y], cfg)
print(before, (tiny * 1.0).item())
"""


def test_training_flushes_denormals_to_zero():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    before, after = map(float, out.split())
    assert before > 0  # a fresh process keeps IEEE denormals ...
    assert after == 0.0  # ... the training loop flushes them
