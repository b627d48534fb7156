"""Image features from a frozen backbone, cached on disk.

Frozen-backbone training reads each image once per view: later runs (other fusions, seeds,
ablations) reuse the cache, which is what makes training on a CPU take minutes, not hours.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from inspector.dataset import BadRow, Sample
from inspector.errors import ImageError
from inspector.images import DRAFT_SIZE, load_image
from models import ImageEncoder
from models.transforms import augment, normalize, resize, to_float


@dataclass
class Features:
    tokens: torch.Tensor  # [M, N, D] float16; with prefix_stages, the maps [M, C, h, w]
    pooled: torch.Tensor  # [M, D] float16
    kept: list[int]  # indices into the samples that decoded


def view_tensor(path: Path, encoder: ImageEncoder, view: int, max_pixels: int) -> torch.Tensor:
    """Decode, resize and (view > 0) augment one image deterministically -> [3, S, S] normalised."""
    image = load_image(path, max_pixels=max_pixels, draft_size=DRAFT_SIZE)
    x = to_float(resize(image, encoder.input_size))
    if view > 0:
        seed = int(hashlib.sha1(f"{path.name}|{view}".encode()).hexdigest()[:12], 16)
        x = augment(x, torch.Generator().manual_seed(seed))
    return normalize(x, encoder.mean, encoder.std)


class FeatureCache:
    def __init__(
        self, encoder: ImageEncoder, cache_dir: Path | None, device: torch.device, max_pixels: int,
        prefix_stages: int = 0,
    ) -> None:  # fmt: skip
        """``cache_dir=None`` keeps nothing on disk (a fine-tuned encoder's features are its own).
        ``prefix_stages`` > 0 keeps the map entering the encoder's last stages instead of its
        outputs: those stages learn, the ones before stay as pretrained, so their map can be cached."""
        self.encoder = encoder.to(device).eval()
        self.dir = Path(cache_dir) / "features" / encoder.name if cache_dir else None
        self.device, self.max_pixels, self.prefix_stages = device, max_pixels, prefix_stages

    def _key(self, path: Path, view: int) -> Path | None:
        if self.dir is None:
            return None
        st = path.stat()
        # "u8": features of the uint8 resize; caches of the earlier float resize are not reused
        raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{view}|{self.encoder.input_size}|u8"
        if self.prefix_stages:
            raw += f"|prefix{self.prefix_stages}"
        key = hashlib.sha1(raw.encode()).hexdigest()
        return self.dir / key[:2] / f"{key}.pt"

    def extract(self, samples: list[Sample], view: int = 0, batch_size: int = 32, progress: bool = True):
        """-> (Features for the samples that decoded, BadRow for each that did not)."""
        results: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        bad: list[BadRow] = []
        todo = []
        for i, s in enumerate(samples):
            f = self._key(s.path, view)
            if f is not None and f.exists():
                d = torch.load(f, weights_only=True)
                results[i] = (d["tokens"], d["pooled"])
            else:
                todo.append(i)

        def load(i: int):
            try:
                return i, view_tensor(samples[i].path, self.encoder, view, self.max_pixels), None
            except ImageError as exc:
                return i, None, str(exc)

        bar = tqdm(total=len(todo), desc=f"features view {view}", disable=not progress or not todo, leave=False)
        with ThreadPoolExecutor(max_workers=2) as pool:
            for start in range(0, len(todo), batch_size):
                chunk = list(pool.map(load, todo[start : start + batch_size]))
                for i, _, err in chunk:
                    if err:
                        bad.append(BadRow(str(samples[i].path), err))
                good = [(i, x) for i, x, _ in chunk if x is not None]
                if good:
                    batch = torch.stack([x for _, x in good]).to(self.device)
                    with torch.inference_mode():
                        if self.prefix_stages:
                            tokens = self.encoder.forward_prefix(batch, self.prefix_stages)
                            pooled = tokens.new_zeros(len(tokens), 0)
                        else:
                            tokens, pooled = self.encoder(batch)
                    for (i, _), t, p in zip(good, tokens.half().cpu(), pooled.half().cpu(), strict=True):
                        f = self._key(samples[i].path, view)
                        if f is not None:
                            f.parent.mkdir(parents=True, exist_ok=True)
                            torch.save({"tokens": t.clone(), "pooled": p.clone()}, f)
                        results[i] = (t, p)
                bar.update(len(chunk))
        bar.close()
        kept = sorted(results)
        if not kept:
            return Features(torch.zeros(0), torch.zeros(0), []), bad
        tokens = torch.stack([results[i][0] for i in kept])
        pooled = torch.stack([results[i][1] for i in kept])
        return Features(tokens, pooled, kept), bad
