"""The bad-input corpus (generated here, small), sent through HTTP with good images between
them: each gets its documented answer, every accepted image is stored exactly once, nothing is
lost, and the station stays ready. docs/service.md's fault table is this test's table."""

from __future__ import annotations

import io
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image
from sqlalchemy import select

from inspector.store import Inspection
from inspector.store.session import session_factory
from tests.service.conftest import png_bytes

STORED_ERROR = "422 error row"  # accepted, stored as an `error` inspection with its reason
REFUSED = "refused"  # answered at the door, nothing accepted or stored
INSPECTED = "inspected"


@dataclass
class Case:
    name: str
    body: bytes | object
    status: int
    outcome: str
    ctype: str = "image/png"
    query: str = "product=washer"


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _bomb() -> bytes:
    """A 2 KB PNG that claims 100,000 x 100,000 pixels (10 GP): refused from its header."""
    png = bytearray(_save(Image.new("L", (64, 64)), "PNG"))
    ihdr = png.index(b"IHDR")
    png[ihdr + 4 : ihdr + 12] = (100_000).to_bytes(4, "big") * 2
    png[ihdr + 17 : ihdr + 21] = zlib.crc32(bytes(png[ihdr : ihdr + 17])).to_bytes(4, "big")
    return bytes(png)


def corpus() -> list[Case]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    jpeg, png = _save(rgb, "JPEG"), _save(rgb, "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [Image.new("RGB", (32, 32), (v, v, v)) for v in (0, 255)]
    deep = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))

    def chunks():
        for _ in range(40):
            yield b"\0" * (64 << 10)  # 2.5 MB, no declared size, over the 2 MB limit

    return [
        Case("zero bytes", b"", 422, REFUSED),
        Case("truncated PNG", png[: len(png) // 2], 422, STORED_ERROR),
        Case("truncated JPEG", jpeg[: len(jpeg) // 2], 422, STORED_ERROR, "image/jpeg"),
        Case("random bytes", rng.bytes(5000), 422, STORED_ERROR),
        Case("text as .png", b"part ok, honest", 422, STORED_ERROR),
        Case("SVG", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>', 422, STORED_ERROR),
        Case("PDF", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", 422, STORED_ERROR),
        Case("decompression bomb (10 GP PNG header)", _bomb(), 422, STORED_ERROR),
        Case("16-bit PNG", _save(deep, "PNG"), 200, INSPECTED),
        Case("grayscale", _save(rgb.convert("L"), "PNG"), 200, INSPECTED),
        Case("RGBA", _save(rgb.convert("RGBA"), "PNG"), 200, INSPECTED),
        Case("CMYK JPEG", _save(rgb.convert("CMYK"), "JPEG"), 200, INSPECTED, "image/jpeg"),
        Case("TIFF", _save(rgb, "TIFF"), 200, INSPECTED, "image/tiff"),
        Case("WebP", _save(rgb, "WEBP"), 200, INSPECTED, "image/webp"),
        Case("BMP", _save(rgb, "BMP"), 200, INSPECTED, "image/bmp"),
        Case("1x1", _save(Image.new("RGB", (1, 1)), "PNG"), 422, STORED_ERROR),
        Case("10000x10", _save(Image.new("RGB", (10_000, 10)), "PNG"), 200, INSPECTED),
        Case("EXIF-rotated JPEG", _save(rgb, "JPEG", exif=exif), 200, INSPECTED, "image/jpeg"),
        Case("animated GIF", _save(frames[0], "GIF", save_all=True, append_images=frames[1:]), 422, STORED_ERROR),
        Case("wrong content type", png, 415, REFUSED, "application/json"),
        Case("unknown product", png, 404, REFUSED, query="product=gearbox"),
        Case("over-long part_serial", png, 422, REFUSED, query="product=washer&part_serial=" + "S" * 200),
        Case("NUL in camera", png, 422, REFUSED, query="product=washer&camera=c%00"),
        Case("chunked body over the limit", chunks, 413, REFUSED),
    ]


def test_the_bad_input_corpus_gets_its_answers_and_nothing_good_is_lost(client, service):
    cases = corpus()
    goods = [png_bytes("ok", i) for i in range(len(cases))]

    def send(item):
        kind, i = item
        if kind == "good":
            return client.post(f"/v1/inspect?product=washer&part_serial=good-{i}", content=goods[i],
                               headers={"Content-Type": "image/png"})  # fmt: skip
        c = cases[i]
        body = c.body() if callable(c.body) else c.body
        return client.post(f"/v1/inspect?{c.query}", content=body, headers={"Content-Type": c.ctype})

    work = [item for i in range(len(cases)) for item in (("bad", i), ("good", i))]
    with ThreadPoolExecutor(8) as pool:
        answers = dict(zip(work, pool.map(send, work), strict=True))

    wrong = {
        c.name: (answers["bad", i].status_code, answers["bad", i].text[:200])
        for i, c in enumerate(cases)
        if answers["bad", i].status_code != c.status
    }
    assert not wrong
    with session_factory(service.db_engine)() as s:
        rows = {r.uuid: r for r in s.scalars(select(Inspection))}
    for i, c in enumerate(cases):
        body = answers["bad", i].json()
        if c.outcome == REFUSED:
            assert "inspection_id" not in body or body["inspection_id"] not in rows, c.name
        else:
            row = rows[body["inspection_id"]]
            assert (row.verdict == "error") == (c.outcome == STORED_ERROR), (c.name, row.verdict, row.error)
            if c.outcome == STORED_ERROR:
                assert row.error and "\n" not in body["error"], c.name
    good_ids = [answers["good", i].json()["inspection_id"] for i in range(len(cases))]
    assert all(answers["good", i].status_code == 200 for i in range(len(cases)))
    assert all(rows[g].verdict != "error" for g in good_ids)  # none failed by a bad neighbour
    accepted = [a for a in answers.values() if a.status_code in (200, 422) and "inspection_id" in a.json()]
    assert len(rows) == len(accepted) == len({a.json()["inspection_id"] for a in accepted})  # 0 lost, 0 twice
    assert len(service.worker.spool) == 0
    assert client.get("/v1/ready").status_code == 200
