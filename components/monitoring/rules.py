"""The alert rules (level full+alerts) as typed data, one rule file per group.

The guide's three (HighErrorRate, DatabaseDown, HighMemoryUsage) and the
platform's own. Every alert has a promtool unit test that fires it and one that
must not (tests/promtool/alerts_test.yml). Job names are those of
components/monitoring/prometheus.py; the tests check that each one exists.

What is measured, and what is not:
- Memory per container would need cAdvisor, which wants the Docker socket or
  the host's /sys: both refused by our policy. So HighMemoryUsage compares what
  a service reports about itself with the limit its container was given:
  Redis (RSS), Qdrant (allocator-resident bytes; memory-mapped segments are
  not counted), the app (the RSS of the uvicorn process that answers /metrics,
  one of its workers), Prometheus (its RSS). PostgreSQL, MinIO, nginx, the
  worker and Flower are not covered; Docker's memory limit and restart policy,
  and the *Down alerts, are what catch them.
- Disk: the free space of the filesystem under Docker's named volumes, through
  node-exporter's probe mount (see DISK_PROBE_PATH).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping, Optional

from pydantic import Field

from components.monitoring.prometheus import DISK_PROBE_PATH, YamlModel, header
from components.backups.backups import backup_periods
from settings.model import BackupSchedule

# Written by the backup job into its textfile (components/backups/backups.py), read by
# node-exporter. A service that never succeeded reports a success time of 0.
BACKUP_SUCCESS_METRIC = "shia_chatbot_backup_last_success_timestamp_seconds"
BACKUP_STATUS_METRIC = "shia_chatbot_backup_last_status"  # 1 verified, 0 failed


def backup_stale_after(schedule: BackupSchedule) -> dict[str, timedelta]:
    """service -> when its newest backup is stale: one whole period of the backup
    job's own schedule (components/backups/backups.py), plus time for the next run to
    finish: 15 minutes for an hourly job, 2 hours for a daily one."""
    return {service: period + (timedelta(minutes=15) if period <= timedelta(hours=1) else timedelta(hours=2))
            for service, period in backup_periods(schedule).items()}

# job -> the metric in which that job reports its container's memory; each job
# is named after the service whose memoryMb limit applies. At 0.9 of the app's
# 2048 MiB prod limit this is the guide's 2e9 bytes.
MEMORY_METRICS: Mapping[str, str] = {
    "app": "process_resident_memory_bytes",
    "redis": "redis_memory_used_rss_bytes",
    "qdrant": "memory_resident_bytes",
    "prometheus": "process_resident_memory_bytes",
}
MEMORY_ALERT_RATIO = 0.9
ERROR_RATIO = 0.05  # the guide's 0.05, as a share of requests
DISK_FREE_RATIO = 0.10


class AlertRule(YamlModel):
    alert: str
    expr: str
    for_: str = Field(alias="for")
    labels: dict[str, str]
    annotations: dict[str, str]


class RuleGroup(YamlModel):
    name: str
    rules: list[AlertRule]


class RuleFile(YamlModel):
    groups: list[RuleGroup]


def _alert(name: str, expr: str, *, for_: str, severity: str, summary: str, description: str,
           labels: Optional[Mapping[str, str]] = None) -> AlertRule:
    return AlertRule(alert=name, expr=expr, for_=for_, labels={"severity": severity, **(labels or {})},
                     annotations={"summary": summary, "description": description})


def duration(value: timedelta) -> str:
    """A Prometheus duration in the largest whole unit: 75m, 26h."""
    seconds = int(value.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, kw_only=True)
class RulesSpec:
    environment: str
    # job -> MiB limit of the container whose memory that job reports (MEMORY_METRICS).
    memory_limit_mb: Mapping[str, int]
    # service -> staleness threshold; empty: no schedule, or no backup metrics to read.
    backup_stale_after: Mapping[str, timedelta]

    def groups(self) -> list[RuleGroup]:
        groups = [self._availability(), self._app(), self._resources()]
        if self.backup_stale_after:
            groups.append(self._backups())
        return groups

    def files(self) -> dict[str, str]:
        """file name -> YAML, one file per group."""
        top = header("Alert rules", self.environment, "components/monitoring_rules.py")
        return {f"{g.name}.yml": top + RuleFile(groups=[g]).yaml() for g in self.groups()}

    def _availability(self) -> RuleGroup:
        return RuleGroup(name="availability", rules=[
            _alert("DatabaseDown", 'pg_up{job="postgres"} == 0 or up{job="postgres"} == 0', for_="1m",
                   severity="critical", summary="PostgreSQL is down",
                   description="{{ $labels.container }} does not answer its exporter, or the exporter is down."),
            _alert("RedisDown", 'redis_up{job="redis"} == 0 or up{job="redis"} == 0', for_="1m",
                   severity="critical", summary="Redis is down",
                   description="{{ $labels.container }} does not answer its exporter, or the exporter is down."),
            _alert("QdrantDown", 'up{job="qdrant"} == 0', for_="1m", severity="critical",
                   summary="Qdrant is down", description="{{ $labels.container }} does not answer /metrics."),
            # up is 1 when a replica answers /metrics. The live slot pages; the
            # idle one (the release candidate or the rollback) warns.
            _alert("AppSlotNoHealthyReplica", 'max by (slot) (up{job="app", active="true"}) == 0', for_="1m",
                   severity="critical", summary="The live app slot has no healthy replica",
                   description="No replica of slot {{ $labels.slot }}, which takes the traffic, answers."),
            _alert("AppSlotNoHealthyReplica", 'max by (slot) (up{job="app", active="false"}) == 0', for_="5m",
                   severity="warning", summary="The idle app slot has no healthy replica",
                   description="No replica of idle slot {{ $labels.slot }} answers: switching to it would fail."),
            _alert("CeleryWorkerDown",
                   'max by (container) (flower_worker_online{job="celery"}) < 1 or up{job="celery"} == 0',
                   for_="5m", severity="critical", summary="The Celery worker is offline",
                   description="Flower sees {{ $labels.container }} offline, or Flower itself does not answer."),
        ])

    def _app(self) -> RuleGroup:
        errors = 'sum by (slot) (rate(http_requests_total{job="app", status=~"5.."}[5m]))'
        total = 'sum by (slot) (rate(http_requests_total{job="app"}[5m]))'
        return RuleGroup(name="app", rules=[
            _alert("HighErrorRate", f"{errors} / {total} > {ERROR_RATIO}", for_="5m", severity="critical",
                   summary="High error rate detected",
                   description="{{ $value | humanizePercentage }} of the requests to slot {{ $labels.slot }} "
                               "fail with a 5xx status."),
        ])

    def _resources(self) -> RuleGroup:
        # One rule over every source (promtool refuses two alerts of one name and labels).
        usage = " or ".join(
            f'{metric}{{job="{job}"}} / {self.memory_limit_mb[job] * 1024 * 1024} > {MEMORY_ALERT_RATIO}'
            for job, metric in MEMORY_METRICS.items())
        disk = f'job="node", mountpoint="{DISK_PROBE_PATH}"'
        return RuleGroup(name="resources", rules=[
            _alert("HighMemoryUsage", usage, for_="5m", severity="warning", summary="High memory usage",
                   description="{{ $labels.container }} uses {{ $value | humanizePercentage }} of its memory limit."),
            _alert("DataDiskAlmostFull",
                   f"node_filesystem_avail_bytes{{{disk}}} / node_filesystem_size_bytes{{{disk}}} < {DISK_FREE_RATIO}",
                   for_="5m", severity="critical", summary="The data volumes' disk is almost full",
                   description="Only {{ $value | humanizePercentage }} of the filesystem holding the "
                               "Docker volumes (PostgreSQL, Redis, Qdrant, MinIO data) is free."),
            _alert("DataDiskFillingUp",
                   f"predict_linear(node_filesystem_avail_bytes{{{disk}}}[6h], 24 * 3600) < 0",
                   for_="1h", severity="warning", summary="The data volumes' disk fills up within a day",
                   description="At the last 6 hours' rate, the filesystem holding the Docker volumes "
                               "is full within 24 hours."),
        ])

    def _backups(self) -> RuleGroup:
        # Services backed up equally often share one BackupStale and one
        # BackupMissing rule; prod's hourly Postgres and daily rest get two each,
        # told apart (for promtool's lint and for routing) by `backup_period`.
        by_threshold: dict[timedelta, list[str]] = {}
        for service, stale_after in sorted(self.backup_stale_after.items()):
            by_threshold.setdefault(stale_after, []).append(service)
        rules = [
            # Early word; the previous backup still counts until BackupStale.
            _alert("BackupFailed", f'max by (service) ({BACKUP_STATUS_METRIC}{{job="node"}}) == 0', for_="1m",
                   severity="warning", summary="A backup failed",
                   description="The last {{ $labels.service }} backup failed verification or did not finish."),
        ]
        for stale_after, services in sorted(by_threshold.items()):
            seconds = int(stale_after.total_seconds())
            selector = f'job="node", service=~"{"|".join(services)}"'
            never = " or ".join(f'absent({BACKUP_SUCCESS_METRIC}{{job="node", service="{s}"}})' for s in services)
            period = {"backup_period": duration(stale_after)}
            rules += [
                _alert("BackupStale", f"time() - max by (service) ({BACKUP_SUCCESS_METRIC}{{{selector}}}) > {seconds}",
                       for_="5m", severity="critical", summary="Backups are stale", labels=period,
                       description="The last successful {{ $labels.service }} backup finished "
                                   "{{ $value | humanizeDuration }} ago; one is expected at least every "
                                   f"{duration(stale_after)}."),
                # Never ran, or its textfile (or node-exporter) is gone: no evidence of a backup.
                _alert("BackupMissing", never, for_=duration(stale_after), severity="critical",
                       summary="No backup is on record", labels=period,
                       description="No successful {{ $labels.service }} backup has been recorded for "
                                   f"{duration(stale_after)}."),
            ]
        return RuleGroup(name="backups", rules=rules)
