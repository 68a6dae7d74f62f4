"""Prometheus's configuration as typed data, rendered with yaml.safe_dump / json.

Two kinds of file, split by what changes them:
- prometheus.yml (and the rule files, components/monitoring/rules.py) depend on
  stack settings only. They are uploads of the Prometheus container: it is
  created with them, and replaced (TSDB kept on its volume) when they change.
- targets/<job>.json (file_sd) list the app replicas of every deployed slot and
  the Celery worker. A slot switch or a replica change rewrites only these, by a
  step into the running container; Prometheus reads them again by itself.

Paths inside prometheus.yml are relative: Prometheus resolves them from the
config file's directory, so the tests check the same tree with promtool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field

from settings.naming import APP_PORT, FLOWER_PORT, QDRANT_PORT, Naming

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
POSTGRES_EXPORTER_PORT = 9187
REDIS_EXPORTER_PORT = 9121
NODE_EXPORTER_PORT = 9100

CONFIG_DIR = "/etc/prometheus"
CONFIG_FILE = "prometheus.yml"
RULES_DIR = "rules"
TARGETS_DIR = "targets"
QDRANT_API_KEY_FILE = "secrets/qdrant-api-key"
FLOWER_PASSWORD_FILE = "secrets/flower-password"
# Where node-exporter mounts an empty volume of its own: every named volume sits
# on Docker's data-root filesystem, so this mount's free space is the data volumes'.
DISK_PROBE_PATH = "/docker-volumes"

SCRAPE_INTERVAL = "15s"  # the guide's
# Prometheus watches the targets directory only once it exists, and the step
# creates it after the container starts: this bounds how late the first targets come.
TARGETS_REFRESH = "30s"


def header(what: str, environment: str, source: str) -> str:
    """The first line of a rendered file. It is part of the container's uploads,
    so editing `source` replaces the container: the callers still pass the
    module names from before components/ was grouped by concern (that move
    changed no input), until the next change to what they render."""
    return f"# {what} for {environment}, rendered from {source}; do not edit on the host.\n"


class YamlModel(BaseModel):
    """A piece of a tool's config: field names are the tool's keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def data(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True)

    def yaml(self) -> str:
        return yaml.safe_dump(self.data(), sort_keys=False, width=1000)


class TargetGroup(YamlModel):
    targets: list[str]
    labels: Optional[dict[str, str]] = None


class FileSd(YamlModel):
    files: list[str]
    refresh_interval: str = TARGETS_REFRESH


class Authorization(YamlModel):
    type: Literal["Bearer"] = "Bearer"
    credentials_file: str


class BasicAuth(YamlModel):
    username: str
    password_file: str


class ScrapeConfig(YamlModel):
    job_name: str
    metrics_path: str = "/metrics"
    authorization: Optional[Authorization] = None
    basic_auth: Optional[BasicAuth] = None
    static_configs: Optional[list[TargetGroup]] = None
    file_sd_configs: Optional[list[FileSd]] = None


class GlobalConfig(YamlModel):
    scrape_interval: str = SCRAPE_INTERVAL
    evaluation_interval: str = SCRAPE_INTERVAL
    external_labels: dict[str, str]


class Alertmanagers(YamlModel):
    static_configs: list[TargetGroup]


class AlertingConfig(YamlModel):
    alertmanagers: list[Alertmanagers]


class PrometheusConfig(YamlModel):
    global_: GlobalConfig = Field(alias="global")
    rule_files: Optional[list[str]] = None
    alerting: Optional[AlertingConfig] = None
    scrape_configs: list[ScrapeConfig]


def targets_file(job: str) -> str:
    return f"{TARGETS_DIR}/{job}.json"


def _static(address: str, container: str) -> list[TargetGroup]:
    # `container` names the container the metrics describe (for an exporter,
    # the service it watches), so alerts say which container is meant.
    return [TargetGroup(targets=[address], labels={"container": container})]


@dataclass(frozen=True, kw_only=True)
class PrometheusSpec:
    """What prometheus.yml depends on: nothing that a release or a switch changes."""

    naming: Naming
    flower_user: str
    alerting: bool

    def config(self) -> PrometheusConfig:
        n = self.naming
        alerting = None
        if self.alerting:
            alerting = AlertingConfig(alertmanagers=[Alertmanagers(
                static_configs=[TargetGroup(targets=[f"{n.container('alertmanager')}:{ALERTMANAGER_PORT}"])])])
        return PrometheusConfig(
            global_=GlobalConfig(external_labels={"environment": n.env}),
            rule_files=[f"{RULES_DIR}/*.yml"] if self.alerting else None,
            alerting=alerting,
            scrape_configs=self._jobs(),
        )

    def _jobs(self) -> list[ScrapeConfig]:
        n = self.naming
        jobs = [
            ScrapeConfig(job_name="prometheus",
                         static_configs=_static(f"localhost:{PROMETHEUS_PORT}", n.container("prometheus"))),
            ScrapeConfig(job_name="app", file_sd_configs=[FileSd(files=[targets_file("app")])]),
            # The worker's metrics come through Flower, which follows its events.
            # Basic auth: Flower versions differ on whether /metrics asks for it.
            ScrapeConfig(job_name="celery", file_sd_configs=[FileSd(files=[targets_file("celery")])],
                         basic_auth=BasicAuth(username=self.flower_user, password_file=FLOWER_PASSWORD_FILE)),
            ScrapeConfig(job_name="postgres", static_configs=_static(
                f"{n.container('postgres-exporter')}:{POSTGRES_EXPORTER_PORT}", n.container("postgres"))),
            ScrapeConfig(job_name="redis", static_configs=_static(
                f"{n.container('redis-exporter')}:{REDIS_EXPORTER_PORT}", n.container("redis"))),
            # Qdrant's own /metrics; with an API key set it wants the key (Bearer accepted).
            ScrapeConfig(job_name="qdrant", authorization=Authorization(credentials_file=QDRANT_API_KEY_FILE),
                         static_configs=_static(f"{n.container('qdrant')}:{QDRANT_PORT}", n.container("qdrant"))),
            ScrapeConfig(job_name="node", static_configs=_static(
                f"{n.container('node-exporter')}:{NODE_EXPORTER_PORT}", n.container("node-exporter"))),
        ]
        if self.alerting:
            jobs.append(ScrapeConfig(job_name="alertmanager", static_configs=_static(
                f"{n.container('alertmanager')}:{ALERTMANAGER_PORT}", n.container("alertmanager"))))
        return jobs

    def render(self) -> str:
        return header("Prometheus config", self.naming.env, "components/monitoring_config.py") + self.config().yaml()


@dataclass(frozen=True, kw_only=True)
class ScrapeTargets:
    """What a release or a switch changes: which app replicas and which worker exist.

    Every replica of every deployed slot is scraped, labelled with its slot and
    whether that slot takes traffic, so a switch shows as `active` moving.
    """

    slots: Mapping[str, Sequence[str]]  # slot -> replica container names
    active_slot: str
    worker: str  # the worker's container; Flower (below) reports on it
    flower: str

    def groups(self) -> dict[str, list[TargetGroup]]:
        app = [
            TargetGroup(targets=[f"{container}:{APP_PORT}"], labels={
                "container": container, "slot": slot, "active": str(slot == self.active_slot).lower()})
            for slot in sorted(self.slots) for container in self.slots[slot]
        ]
        celery = [TargetGroup(targets=[f"{self.flower}:{FLOWER_PORT}"],
                              labels={"container": self.worker, "slot": self.active_slot})]
        return {"app": app, "celery": celery}

    def files(self) -> dict[str, str]:
        """job -> the JSON of targets/<job>.json."""
        return {job: json.dumps([g.data() for g in groups], indent=2, sort_keys=True) + "\n"
                for job, groups in self.groups().items()}
