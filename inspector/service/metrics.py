"""Prometheus metrics of one service instance (own registry: tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.inspections = Counter("inspector_inspections", "Inspections stored, by verdict", ["verdict"], registry=r)
        self.rejected_full = Counter("inspector_rejected_queue_full", "Images refused: queue full", registry=r)
        self.db_errors = Counter("inspector_db_write_errors", "Failed database writes (retried)", registry=r)
        self.failed_batches = Counter(
            "inspector_failed_batches", "Batches that failed to inspect or store (jobs kept to retry)", registry=r
        )
        self.dead_jobs = Counter("inspector_dead_jobs", "Jobs given up after repeated failures", registry=r)
        self.queue_depth = Gauge("inspector_queue_depth", "Images waiting for the model", registry=r)
        self.batch_size = Histogram(
            "inspector_batch_size", "Images per model batch", registry=r, buckets=(1, 2, 4, 8, 16, 32, 64, 128)
        )
        self.stage = Histogram(
            "inspector_stage_seconds",
            "Time per stage: decode (one image, in a decode thread), infer and store (one batch)",
            ["stage"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.latency = Histogram(
            "inspector_latency_seconds",
            "Accept-to-stored latency",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def observe(self, outcome) -> None:
        self.inspections.labels(outcome.verdict).inc()
        self.latency.observe(outcome.latency_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
