"""Prometheus metrics on a registry of the app's own (no process-global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jobs import Job, JobStatus

STAGE_BUCKETS_S = (0.1, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640)
# HTTP answers: from a cached GET (ms) to an upload with a face check or a long event stream (minutes).
HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _LiveGauges(Collector):
    """Jobs by state and queue depth, read at scrape time."""

    def __init__(self, counts: Callable[[], dict[str, int]], depth: Callable[[], int]):
        self._counts, self._depth = counts, depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("sadtalker_jobs", "Job records by state", labels=["state"])
        for state, count in sorted(self._counts().items()):
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily("sadtalker_queue_depth", "Jobs waiting for a worker", value=self._depth())


class Metrics:
    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.submitted = Counter("sadtalker_jobs_submitted", "Jobs accepted", registry=self.registry)
        self.finished = Counter("sadtalker_jobs_finished", "Jobs that reached a terminal state", ["status"],
                                registry=self.registry)
        self.failures = Counter("sadtalker_job_failures", "Failed jobs by error code", ["code"],
                                registry=self.registry)
        self.stage_seconds = Histogram("sadtalker_stage_duration_seconds", "Time spent in each render stage",
                                       ["stage"], buckets=STAGE_BUCKETS_S, registry=self.registry)
        # Per route template (/v1/jobs/{job_id}), never the raw path: the label set stays small.
        self.http_seconds = Histogram("sadtalker_http_request_duration_seconds",
                                      "HTTP request duration until the answer ends (event streams: their life)",
                                      ["method", "route", "status"], buckets=HTTP_BUCKETS_S, registry=self.registry)
        self.http_in_flight = Gauge("sadtalker_http_requests_in_flight", "HTTP requests being answered",
                                    ["method", "route"], registry=self.registry)

    def watch(self, counts: Callable[[], dict[str, int]], depth: Callable[[], int]) -> None:
        self.registry.register(_LiveGauges(counts, depth))

    def stage_done(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(seconds)

    def job_finished(self, job: Job) -> None:
        self.finished.labels(job.status.value).inc()
        if job.status is JobStatus.FAILED and job.error:
            self.failures.labels(job.error.code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
