"""What a PLC sees of the handshake: its states, result codes and the result it reads. Plain
types, light to import: the OPC UA server's own process uses them without the model.

Result codes (``ResultCode`` on OPC UA, ``result_code`` in Sparkplug B and the HTTP answer):
0 the part passed; 1..N the product's defect types in the manual's order; 100 a defect whose
type is not named; 101 timeout (fail-safe reject); 102 the image could not be inspected
(fail-safe reject); 103 the station was overloaded (fail-safe reject). Refusals: 200 busy, 201
fault, 202 unknown product, 203 stopped, 204 no image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from inspector.errors import InspectorError

PASS, UNNAMED, TIMEOUT, ERROR, OVERLOADED = 0, 100, 101, 102, 103
BUSY, FAULT, UNKNOWN_PRODUCT, STOPPED, NO_IMAGE = 200, 201, 202, 203, 204
STATES = ("stopped", "ready", "busy", "fault")


class TriggerRefused(InspectorError):
    """A trigger the station did not take; ``code`` says why (documented above)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LineResult:
    """What the PLC reads once ResultValid is set."""

    trigger: int  # the station's trigger counter
    inspection_id: str
    product: str
    verdict: str  # accept | review | reject (fail-safe results are reject)
    result_code: int
    defect_type: str | None
    confidence: float
    timestamp: datetime
    part_serial: str
    late: bool  # the window passed before the model answered: a fail-safe reject
    latency_ms: float  # trigger -> result
    model_version: str = ""


@dataclass
class Counters:
    triggers: int = 0
    results: int = 0
    timeouts: int = 0
    refused: int = 0
    late_in_a_row: int = 0
    late_stored: int = 0  # late inspections the model finished and the store marked late


@dataclass
class HandshakeState:
    state: str = "stopped"  # one of STATES
    result_valid: bool = False  # a result waits for the PLC's acknowledge (it drops Trigger)
    product: str = ""
    result: LineResult | None = None
    error_code: int = 0
    error: str = ""
    counters: Counters = field(default_factory=Counters)

    @property
    def ready(self) -> bool:
        return self.state == "ready" and not self.result_valid

    @property
    def system_state(self) -> str:
        """What PLCs and SCADA see: Stopped, Ready, Busy, ResultValid or Error."""
        if self.state == "ready" and self.result_valid:
            return "ResultValid"
        return {"stopped": "Stopped", "ready": "Ready", "busy": "Busy", "fault": "Error"}[self.state]
