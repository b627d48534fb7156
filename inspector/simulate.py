"""``inspector simulate-line``: a PLC on OPC UA, for commissioning and benchmarks.

It triggers parts at a set rate from a folder of images, running the station's handshake for
each (wait Ready, write PartSerial and Image, set Trigger, wait ResultValid, read the result,
drop Trigger), checks every result, and reports trigger -> ResultValid latency percentiles,
timeouts (fail-safe code 101), refused and lost triggers, and results that disagree with the
labels when the folder has them (a product folder with manifest.csv or images/<class>/).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from inspector.dataset import IMAGE_SUFFIXES
from inspector.errors import DataError
from inspector.service.line_state import TIMEOUT


@dataclass
class Part:
    path: Path
    label: str | None  # "ok", a defect type, or None (unlabelled)


@dataclass
class LineReport:
    endpoint: str
    rate_wanted: float
    parts: int = 0
    seconds: float = 0.0
    results: int = 0
    lost: int = 0  # no ResultValid within the PLC's own timeout: a lost trigger
    refused: dict[str, int] = field(default_factory=dict)  # error code -> count
    timeouts: int = 0  # fail-safe rejects (result code 101)
    behind: int = 0  # parts triggered later than their slot (the station could not keep the rate)
    fault_after_parts: int | None = None  # the station went to Fault: the line stopped after this many parts
    verdicts: dict[str, int] = field(default_factory=dict)
    escapes: int = 0  # labelled defects the line accepted
    false_rejects: int = 0  # labelled good parts the line did not accept
    labelled: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p95, p99, max

    @property
    def rate_achieved(self) -> float:
        return self.parts / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "rate_achieved": round(self.rate_achieved, 2)}


def find_parts(folder: Path) -> list[Part]:
    """A product folder (manifest.csv or images/<class>/) with labels, else the images in it."""
    folder = Path(folder)
    if (folder / "manual.md").is_file():
        from inspector.dataset import load_product

        ds = load_product(folder)
        parts = [Part(s.path, s.defect_type) for s in sorted(ds.samples, key=lambda s: str(s.path))]
        random.Random(0).shuffle(parts)  # a line mixes good and defective parts; a folder sorts them by class
    else:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        parts = [Part(p, None) for p in files]
    if not parts:
        raise DataError(f"{folder}: no images to put on the line")
    return parts


async def _run(
    endpoint: str, user: str | None, password: str | None, parts: list[Part], rate: float, count: int,
    seconds: float, product: str | None, plc_timeout_s: float, cycle_s: float,
) -> LineReport:  # fmt: skip
    from asyncua import Client, ua

    from inspector.service.opcua import NAMESPACE

    report = LineReport(endpoint, rate)
    client = Client(endpoint, timeout=10)
    if user:
        client.set_user(user)
        client.set_password(password or "")
    latencies: list[float] = []
    async with client:
        idx = await client.get_namespace_index(NAMESPACE)

        async def node(*path: str):
            return await client.nodes.objects.get_child([f"{idx}:{p}" for p in ("VisionSystem", *path)])

        if product:
            code = await (await node("RecipeManagement")).call_method(f"{idx}:ActivateRecipe", product)
            if code:
                raise DataError(f"the station refused product '{product}' (code {code})")
        ready, valid = await node("Handshake", "Ready"), await node("Handshake", "ResultValid")
        trigger, serial, image = [await node("Handshake", n) for n in ("Trigger", "PartSerial", "Image")]
        error, refusals = await node("Handshake", "ErrorCode"), await node("Counters", "Refused")
        fault = await node("Handshake", "Fault")
        names = ("Verdict", "ResultCode", "PartSerial")
        result_nodes = [await node("ResultManagement", "Results", n) for n in names]
        if not await ready.read_value():
            await (await node()).call_method(f"{idx}:Start")
        start = time.perf_counter()
        for i in range(count):
            if time.perf_counter() - start > seconds:
                break
            part = parts[i % len(parts)]
            slot = start + i / rate
            if (wait := slot - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            elif wait < -0.5 / rate:
                report.behind += 1
            data = part.path.read_bytes()
            deadline = time.perf_counter() + plc_timeout_s
            while not await ready.read_value():  # the previous part's cycle must end first
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(cycle_s)
            tag = f"SIM-{i:06d}"
            await client.write_values([serial, image], [tag, ua.Variant(data, ua.VariantType.ByteString)])
            refused_before = await refusals.read_value()
            t0 = time.perf_counter()
            await trigger.write_value(True)
            report.parts += 1
            got = None
            while time.perf_counter() - t0 < plc_timeout_s:
                if await valid.read_value():
                    got = await client.read_values(result_nodes)
                    break
                if await refusals.read_value() != refused_before:
                    code = str(await error.read_value())
                    report.refused[code] = report.refused.get(code, 0) + 1
                    got = False
                    break
                await asyncio.sleep(cycle_s)
            if got is None:
                report.lost += 1
            elif got:
                verdict, code, echoed = got
                latencies.append((time.perf_counter() - t0) * 1000)
                report.results += 1
                report.verdicts[verdict] = report.verdicts.get(verdict, 0) + 1
                report.timeouts += code == TIMEOUT
                if echoed != tag:
                    report.lost += 1  # the result of another part: as bad as none
                if part.label is not None:
                    report.labelled += 1
                    report.escapes += part.label != "ok" and verdict == "accept"
                    report.false_rejects += part.label == "ok" and verdict != "accept"
            await trigger.write_value(False)  # acknowledge: ResultValid off, Ready on
            if await fault.read_value():  # a station in Fault stops the line until someone resets it
                report.fault_after_parts = report.parts
                break
        report.seconds = time.perf_counter() - start
    if latencies:
        lat = np.array(latencies)
        report.latency_ms = {
            "p50": round(float(np.percentile(lat, 50)), 2),
            "p95": round(float(np.percentile(lat, 95)), 2),
            "p99": round(float(np.percentile(lat, 99)), 2),
            "max": round(float(lat.max()), 2),
        }
    return report


def simulate_line(
    endpoint: str, folder: Path, rate: float = 20.0, count: int = 1000, seconds: float = 600.0,
    user: str | None = None, password: str | None = None, product: str | None = None, plc_timeout_s: float = 5.0,
    cycle_ms: float = 5.0,
) -> LineReport:  # fmt: skip
    """Run the line; bounded by ``count`` parts and ``seconds``. ``cycle_ms``: how often the PLC
    reads Ready and ResultValid, as a PLC's scan cycle does. The station's OPC UA server answers
    each read in Python beside the model, so reads cost inference time through the GIL: on the
    demo model (2-core CPU) inference took 103 ms per part polled every 5 ms, 131 ms every 2 ms,
    150 ms every 0.5 ms, against 88 ms in a thread of a process without a server."""
    if rate <= 0:
        raise DataError("--rate must be above 0 parts per second")
    if cycle_ms <= 0:
        raise DataError("--cycle-ms must be above 0")
    parts = find_parts(folder)
    return asyncio.run(
        _run(endpoint, user, password, parts, rate, count, seconds, product, plc_timeout_s, cycle_ms / 1000)
    )
