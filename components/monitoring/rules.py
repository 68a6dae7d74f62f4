"""The alert rules (level full+alerts) as typed data, one rule file per group.

The guide's three (HighErrorRate, DatabaseDown, HighMemoryUsage) and the
platform's own. Job names are those of components/monitoring/prometheus.py;
the tests check that each one exists.

Every alert fires when what it watches is gone, not only when it reports
trouble: an exporter or target that is down or not scraped (Prometheus marks
the series of a failed scrape stale at once), a metric an image no longer
exports, a textfile the backup job no longer writes. An alert that says
"down" or "stale" fires on absence in the same rule. One that reports a figure
(a ratio, free space, a count) has a twin rule of the same name with the label
`data="absent"` (ABSENT) that says what is missing. BackupFailed and
BackupStale judge from the last value seen within their window, so a textfile
that vanishes does not resolve them; a series never seen is BackupMissing's.
tests/promtool/alerts_test.yml has, for every alert, a case that fires it, a
quiet one after its `for`, and one with its series absent; a test enumerates
the rendered alerts and fails if one lacks any of the three.

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
- The Celery worker: only through Flower (see CeleryWorkerDown).
- runtime swarm: a slot's running tasks, as the app targets DNS finds that
  answer their scrape (SlotTasksBelowReplicas): Swarm's own task states would
  need the Docker socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Mapping, Optional

from pydantic import Field

from components.app.worker import FLOWER_PURGE_OFFLINE_WORKERS
from components.monitoring.prometheus import DISK_PROBE_PATH, YamlModel, header
from components.backups.backups import backup_periods
from components.backups.pgbackrest import ARCHIVE_TIMEOUT_SECONDS
from settings.model import BackupSchedule
from settings.naming import Naming

# The label that marks the twin of an alert that fires because its series are absent.
ABSENT = {"data": "absent"}

# Written by the backup job into its textfile (components/backups/image/lib/common.sh),
# read by node-exporter, per service: postgres, redis, qdrant, minio and, for each,
# offsite-<service> (its off-site copy). A service that never succeeded reports a
# success time of 0.
BACKUP_SUCCESS_METRIC = "shia_chatbot_backup_last_success_timestamp_seconds"
BACKUP_STATUS_METRIC = "shia_chatbot_backup_last_status"  # 1 verified, 0 failed
OFFSITE = "offsite-"  # + the service whose off-site copy it is

# From pg_stat_archiver, written every minute by the backup job's `lib/postgres.sh
# metrics` into its own textfile (shia_chatbot_wal.prom); timestamps are 0 until the first.
WAL_ARCHIVED_TIMESTAMP = "shia_chatbot_postgres_wal_last_archived_timestamp_seconds"
WAL_FAILED_TIMESTAMP = "shia_chatbot_postgres_wal_last_failed_timestamp_seconds"
WAL_READY_SEGMENTS = "shia_chatbot_postgres_wal_ready_segments"
WAL_METRICS_TIMESTAMP = "shia_chatbot_postgres_wal_metrics_timestamp_seconds"
# PostgreSQL's archive_timeout: a segment with any write in it is closed, and so
# archived, within a minute. That is the recovery point goal (<= 1 minute).
ARCHIVE_TIMEOUT = timedelta(seconds=ARCHIVE_TIMEOUT_SECONDS)
WAL_METRICS_PERIOD = timedelta(minutes=1)  # the cron line that writes them
# The archiver retries a failing segment 3 times, then waits 60 s (PostgreSQL's
# pgarch.c), and the file is refreshed every minute: a newest attempt that still
# failed 2 minutes on is a whole retry cycle over two refreshes, not a blip. By
# then the goal is missed (a segment closes every archive_timeout), so waiting
# longer would only let the writes at risk grow.
WAL_FAILING_FOR = 2 * ARCHIVE_TIMEOUT
# One segment may wait: the one just closed, pushed in seconds. More than one
# means archiving runs behind the WAL written, by more than an archive_timeout's
# worth: past the goal. 5 minutes lets a burst (a bulk load, an index build) drain.
WAL_BACKLOG_SEGMENTS = 1
WAL_BACKLOG_FOR = timedelta(minutes=5)
# Three refreshes missed. While the file is stale node-exporter keeps serving its
# last values, so the two alerts above could not fire: as critical as they are.
WAL_METRICS_STALE_AFTER = 3 * WAL_METRICS_PERIOD


def backup_stale_after(schedule: BackupSchedule) -> dict[str, timedelta]:
    """service -> when its newest backup is stale: one whole period of the backup
    job's own schedule (components/backups/backups.py), plus time for the next run to
    finish: 15 minutes for an hourly job, 2 hours for a daily one. Each service's
    off-site copy (`offsite-<service>`) on the same period: every run brings it
    up to date. Empty for schedule `none`."""
    periods = backup_periods(schedule)
    periods |= {OFFSITE + service: period for service, period in periods.items()}
    return {service: period + (timedelta(minutes=15) if period <= timedelta(hours=1) else timedelta(hours=2))
            for service, period in periods.items()}


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
# runtime swarm. Swarm restarts a failed task within seconds (RESTART_DELAY,
# components/swarm/service.py) and moves a lost node's tasks once it marks the
# node down; a new task is scraped within one DNS refresh and one scrape
# (TASKS_REFRESH, prometheus.py), so a start-first update, whose old task may
# stop before DNS shows the new one, is one short for that long at most. Still
# short after 5 minutes: Swarm cannot place or start the task (no app node with
# room, an image that does not pull, a crash loop). A warning: the slot serves
# on fewer tasks (AppSlotNoHealthyReplica pages when the live one has none).
TASKS_BELOW_REPLICAS_FOR = timedelta(minutes=5)


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


def _absent(*selectors: str) -> str:
    """Fires with the selectors' equality labels when any of them matches nothing."""
    return " or ".join(f"absent({s})" for s in selectors)


def _down(selector: str) -> str:
    """A 0/1 `up`-like series that is 0, or absent."""
    return f"{selector} == 0 or {_absent(selector)}"


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
    # Whether node-exporter serves the backup job's WAL archiving metrics.
    wal_archiving: bool
    # runtime swarm: deployed slot -> its configured replicas. Empty on docker,
    # where a replica is a container of its own and no rule counts tasks.
    slot_replicas: Mapping[str, int] = field(default_factory=dict)

    def groups(self) -> list[RuleGroup]:
        groups = [self._availability(), self._app(), self._resources()]
        if self.backup_stale_after:
            groups.append(self._backups())
        if self.wal_archiving:
            groups.append(self._wal_archiving())
        if self.slot_replicas:
            groups.append(self._tasks())
        return groups

    def files(self) -> dict[str, str]:
        """file name -> YAML, one file per group."""
        top = header("Alert rules", self.environment, "components/monitoring/rules.py")
        return {f"{g.name}.yml": top + RuleFile(groups=[g]).yaml() for g in self.groups()}

    def _availability(self) -> RuleGroup:
        # A failed scrape leaves the exporter's series stale at once: absent() is
        # "the exporter is down or not scraped", pg_up/redis_up 0 "it cannot reach its server".
        return RuleGroup(name="availability", rules=[
            _alert("DatabaseDown", _down('pg_up{job="postgres"}'),
                   for_="1m", severity="critical", summary="PostgreSQL is down",
                   description="PostgreSQL does not answer its exporter, or the exporter is down or not scraped."),
            _alert("RedisDown", _down('redis_up{job="redis"}'),
                   for_="1m", severity="critical", summary="Redis is down",
                   description="Redis does not answer its exporter, or the exporter is down or not scraped."),
            _alert("QdrantDown", _down('up{job="qdrant"}'),
                   for_="1m", severity="critical", summary="Qdrant is down",
                   description="Qdrant does not answer /metrics, or it is not scraped."),
            # up is 1 when a replica answers /metrics. The live slot pages, also when
            # none of its replicas is a target; the idle one (the release candidate
            # or the rollback) warns, and may well not be deployed at all.
            _alert("AppSlotNoHealthyReplica",
                   'max by (slot) (up{job="app", active="true"}) == 0 or '
                   + _absent('up{job="app", active="true"}'),
                   for_="1m", severity="critical", summary="The live app slot has no healthy replica",
                   description="No replica of the live slot{{ with $labels.slot }} {{ . }}{{ end }} answers, "
                               "or none is a scrape target (targets/app.json)."),
            _alert("AppSlotNoHealthyReplica", 'max by (slot) (up{job="app", active="false"}) == 0', for_="5m",
                   severity="warning", summary="The idle app slot has no healthy replica",
                   description="No replica of idle slot {{ $labels.slot }} answers: switching to it would fail."),
            # Flower's only worker metric is the gauge flower_worker_online, which
            # follows worker events: worker-online and each worker-heartbeat (every
            # 2 s) set it to 1, worker-offline to 0 (mher/flower 2.2.0, flower/events.py,
            # PrometheusMetrics.observe_worker). A killed worker sends no
            # worker-offline, so it stays 1 for good. Flower's counter
            # flower_events_total counts task events only (observe_task: EventsState.event
            # hands every other event to observe_worker), as it has since Flower's
            # metrics came in (0.9.5): there is no heartbeat count to watch. Since 2.1.0
            # Flower drops every series of a worker whose heartbeats stopped
            # FLOWER_PURGE_OFFLINE_WORKERS ago, at each scrape of /metrics (flower/app.py
            # purge_offline_worker_metrics, called by flower/views/monitor.py), which
            # Flower's container sets (components/app/worker.py). So: no worker online
            # is a worker gone silent (dropped) or shut down (0), a Flower that knows
            # none (restarted while the worker was down), or Flower down or not
            # scraped (its series stale).
            _alert("CeleryWorkerDown", 'absent(flower_worker_online{job="celery"} == 1)',
                   for_="5m", severity="critical", summary="The Celery worker is offline",
                   description="Flower has had no heartbeat from any Celery worker for over "
                               f"{int(FLOWER_PURGE_OFFLINE_WORKERS.total_seconds())} s, or Flower "
                               "does not answer."),
        ])

    def _app(self) -> RuleGroup:
        errors = 'sum by (slot) (rate(http_requests_total{job="app", status=~"5.."}[5m]))'
        total = 'sum by (slot) (rate(http_requests_total{job="app"}[5m]))'
        return RuleGroup(name="app", rules=[
            _alert("HighErrorRate", f"{errors} / {total} > {ERROR_RATIO}", for_="5m", severity="critical",
                   summary="High error rate detected",
                   description="{{ $value | humanizePercentage }} of the requests to slot {{ $labels.slot }} "
                               "fail with a 5xx status."),
            # The image counts every request it answers, the healthchecks' and the
            # scrapes' too (docs/app-image.md): a live slot without the counter is
            # not measured, not idle.
            _alert("HighErrorRate", _absent('http_requests_total{job="app", active="true"}'), for_="5m",
                   severity="critical", labels=ABSENT, summary="The error rate is not measured",
                   description="No replica of the live slot reports http_requests_total."),
        ])

    def _resources(self) -> RuleGroup:
        # One rule over every source (promtool refuses two alerts of one name and labels).
        usage = " or ".join(
            f'{metric}{{job="{job}"}} / {self.memory_limit_mb[job] * 1024 * 1024} > {MEMORY_ALERT_RATIO}'
            for job, metric in MEMORY_METRICS.items())
        reported = _absent(*(f'{metric}{{job="{job}"}}' for job, metric in MEMORY_METRICS.items()))
        disk = f'job="node", mountpoint="{DISK_PROBE_PATH}"'
        avail, size = f"node_filesystem_avail_bytes{{{disk}}}", f"node_filesystem_size_bytes{{{disk}}}"
        unseen = "node-exporter reports no {what} of {{{{ $labels.mountpoint }}}}, or is down or not scraped."
        return RuleGroup(name="resources", rules=[
            _alert("HighMemoryUsage", usage, for_="5m", severity="warning", summary="High memory usage",
                   description="{{ $labels.container }} uses {{ $value | humanizePercentage }} of its memory limit."),
            _alert("HighMemoryUsage", reported, for_="5m", severity="warning", labels=ABSENT,
                   summary="Memory usage is not measured",
                   description="Job {{ $labels.job }} reports no resident memory to compare with its limit."),
            _alert("DataDiskAlmostFull", f"{avail} / {size} < {DISK_FREE_RATIO}",
                   for_="5m", severity="critical", summary="The data volumes' disk is almost full",
                   description="Only {{ $value | humanizePercentage }} of the filesystem holding the "
                               "Docker volumes (PostgreSQL, Redis, Qdrant, MinIO data) is free."),
            _alert("DataDiskAlmostFull", _absent(avail, size), for_="5m", severity="critical", labels=ABSENT,
                   summary="The data volumes' free space is not measured",
                   description=unseen.format(what="size or free space")),
            _alert("DataDiskFillingUp", f"predict_linear({avail}[6h], 24 * 3600) < 0",
                   for_="1h", severity="warning", summary="The data volumes' disk fills up within a day",
                   description="At the last 6 hours' rate, the filesystem holding the Docker volumes "
                               "is full within 24 hours."),
            _alert("DataDiskFillingUp", _absent(avail), for_="1h", severity="warning", labels=ABSENT,
                   summary="The data volumes' disk trend is not measured",
                   description=unseen.format(what="free space")),
        ])

    def _backups(self) -> RuleGroup:
        # Services backed up equally often share one BackupStale and one
        # BackupMissing rule; prod's hourly Postgres and daily rest get two each,
        # told apart (for promtool's lint and for routing) by `backup_period`.
        by_threshold: dict[timedelta, list[str]] = {}
        for service, stale_after in sorted(self.backup_stale_after.items()):
            by_threshold.setdefault(stale_after, []).append(service)
        # The last status seen within the longest period: a textfile that vanishes
        # after a failure keeps the alert on until BackupMissing takes over.
        longest = duration(max(self.backup_stale_after.values()))
        rules = [
            # Early word; the previous backup still counts until BackupStale.
            _alert("BackupFailed",
                   f'max by (service) (last_over_time({BACKUP_STATUS_METRIC}{{job="node"}}[{longest}])) == 0',
                   for_="1m", severity="warning", summary="A backup failed",
                   description="The last {{ $labels.service }} backup failed verification or did not finish."),
        ]
        for stale_after, services in sorted(by_threshold.items()):
            seconds, period = int(stale_after.total_seconds()), duration(stale_after)
            selector = f'job="node", service=~"{"|".join(services)}"'
            # The newest success time seen within the period: still judged on time
            # after the textfile vanishes (the success time only grows).
            newest = f"max by (service) (max_over_time({BACKUP_SUCCESS_METRIC}{{{selector}}}[{period}]))"
            never = _absent(*(f'{metric}{{job="node", service="{s}"}}'
                              for s in services for metric in (BACKUP_SUCCESS_METRIC, BACKUP_STATUS_METRIC)))
            rules += [
                _alert("BackupStale", f"time() - {newest} > {seconds}",
                       for_="5m", severity="critical", summary="Backups are stale",
                       labels={"backup_period": period},
                       description="The last successful {{ $labels.service }} backup finished "
                                   "{{ $value | humanizeDuration }} ago; one is expected at least every "
                                   f"{period}."),
                # Never ran, or its textfile (or node-exporter) is gone: no evidence of a backup.
                _alert("BackupMissing", never, for_=period, severity="critical",
                       summary="No backup is on record", labels={"backup_period": period},
                       description="No {{ $labels.service }} backup has been on record for "
                                   f"{period}: the job never ran, or its metrics are gone."),
            ]
        return RuleGroup(name="backups", rules=rules)

    def _wal_archiving(self) -> RuleGroup:
        archived, failed = f'{WAL_ARCHIVED_TIMESTAMP}{{job="node"}}', f'{WAL_FAILED_TIMESTAMP}{{job="node"}}'
        ready, written = f'{WAL_READY_SEGMENTS}{{job="node"}}', f'{WAL_METRICS_TIMESTAMP}{{job="node"}}'
        stale_after = int(WAL_METRICS_STALE_AFTER.total_seconds())
        return RuleGroup(name="wal_archiving", rules=[
            _alert("PostgresWalArchiveFailing", f"{failed} > {archived}", for_=duration(WAL_FAILING_FOR),
                   severity="critical", summary="WAL archiving fails",
                   description="PostgreSQL's newest attempt to archive a WAL segment (pgBackRest archive-push) "
                               "failed and none has succeeded since: the recovery point no longer moves."),
            _alert("PostgresWalArchiveFailing", _absent(failed, archived), for_=duration(WAL_FAILING_FOR),
                   severity="critical", labels=ABSENT, summary="WAL archiving is not measured",
                   description="The backup job's WAL metrics lack the archiver's last success or failure time."),
            _alert("PostgresWalArchiveBacklog", f"{ready} > {WAL_BACKLOG_SEGMENTS}",
                   for_=duration(WAL_BACKLOG_FOR), severity="warning", summary="WAL archiving falls behind",
                   description="{{ $value }} WAL segments wait to be archived: the recovery point lags "
                               f"more than the {int(ARCHIVE_TIMEOUT.total_seconds())} s goal."),
            _alert("PostgresWalArchiveBacklog", _absent(ready), for_=duration(WAL_BACKLOG_FOR),
                   severity="warning", labels=ABSENT, summary="The WAL archive queue is not measured",
                   description="The backup job's WAL metrics lack the number of segments waiting."),
            _alert("PostgresWalMetricsStale", f"time() - {written} > {stale_after} or {_absent(written)}",
                   for_=duration(WAL_FAILING_FOR), severity="critical",
                   summary="WAL archiving is not watched",
                   description="The WAL archiving metrics are missing or older than "
                               f"{duration(WAL_METRICS_STALE_AFTER)}: the backup job's every-minute "
                               "`lib/postgres.sh metrics` stopped, or cannot read pg_stat_archiver."),
        ])

    def _tasks(self) -> RuleGroup:
        # One rule (and one twin) per slot, told apart by their `slot` label, each
        # with that slot's replicas. sum(up) counts the tasks that answer; a task
        # that is gone or failing counts 0 until DNS drops it, then has no series.
        # No task at all leaves no series to sum: the twin.
        n, for_ = Naming(self.environment), duration(TASKS_BELOW_REPLICAS_FOR)
        rules = []
        for slot, replicas in sorted(self.slot_replicas.items()):
            up, tasks = f'up{{job="app", slot="{slot}"}}', Naming.tasks(n.app_service(slot))
            rules += [
                _alert("SlotTasksBelowReplicas", f"sum by (slot) ({up}) < {replicas}", for_=for_,
                       severity="warning", labels={"slot": slot},
                       summary="An app slot runs fewer tasks than its replicas",
                       description=f"Slot {slot} has {{{{ $value }}}} answering tasks; its replicas: {replicas}. "
                                   "Swarm cannot place or start the rest, or they fail their scrape."),
                _alert("SlotTasksBelowReplicas", _absent(up), for_=for_, severity="warning",
                       labels={"slot": slot, **ABSENT}, summary="An app slot runs no task",
                       description=f"DNS finds no task of slot {slot} ({tasks}); its replicas: {replicas}. "
                                   "Swarm runs none of them, or the service is gone."),
            ]
        return RuleGroup(name="tasks", rules=rules)
