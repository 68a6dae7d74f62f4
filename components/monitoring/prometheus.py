"""Prometheus's configuration as typed data, rendered with yaml.safe_dump / json.

Two kinds of file, split by what changes them:
- prometheus.yml (and the rule files, components/monitoring/rules.py) depend on
  stack settings only. They are uploads of the Prometheus container: it is
  created with them, and replaced (TSDB kept on its volume) when they change.
- targets/<job>.json (file_sd) list the app replicas of every deployed slot and
  the Celery worker. A slot switch or a replica change rewrites only these, by a
  step into the running container; Prometheus reads them again by itself.

On runtime swarm there are no targets files: Prometheus finds the running
tasks of the app slots, Flower and the global node-exporter by DNS
(`tasks.<service>`, dns_sd_configs); the Docker socket that dockerswarm_sd
would read is refused by the policy pack. A DNS target carries no labels of
its own, so each one gets its service's (slot, active, container) by
relabelling: prometheus.yml then depends on the deployed slots and the active
one, and a switch re-renders it (a replica change does not: it re-renders the
tasks rules, rules.py). The job names and labels are the docker runtime's, so
the rules read both alike.

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
# runtime swarm: how often the tasks' DNS names are asked again. A new task is
# scraped at most this plus one scrape interval after Swarm starts it; a lost
# one fails its next scrape (up 0) whatever this is, and leaves at the next
# refresh. One scrape interval: the answer comes from the node's own Docker
# daemon, so asking often costs nothing, and SlotTasksBelowReplicas's `for`
# (rules.py) stays far above the lag.
TASKS_REFRESH = SCRAPE_INTERVAL
# The label dns_sd_configs set on a target: the name that found it.
DNS_NAME_LABEL = "__meta_dns_name"


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


class DnsSd(YamlModel):
    """One target per A record of each name, at `port`."""

    names: list[str]
    type: Literal["A"] = "A"
    port: int
    refresh_interval: str = TASKS_REFRESH


class Relabel(YamlModel):
    """Sets `target_label` to `replacement` on a target whose `source_labels`
    (joined by `;`) match `regex` in full (Prometheus's action `replace`)."""

    source_labels: list[str]
    regex: str
    target_label: str
    replacement: str


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
    dns_sd_configs: Optional[list[DnsSd]] = None
    relabel_configs: Optional[list[Relabel]] = None


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


def _app_labels(container: str, slot: str, active_slot: str) -> dict[str, str]:
    """An app target's labels: the rules select on `slot` and `active`."""
    return {"container": container, "slot": slot, "active": str(slot == active_slot).lower()}


def _celery_labels(worker: str, active_slot: str) -> dict[str, str]:
    """Flower's target describes the worker of the active slot."""
    return {"container": worker, "slot": active_slot}


def _tasks(services: Mapping[str, Mapping[str, str]], port: int) -> dict:
    """A job's target fields on swarm: every running task of each service (service
    -> the labels of its targets), asked of DNS, labelled by the name that found it."""
    # A DNS name is letters, digits, '-' and '.': only the dot needs escaping.
    return {
        "dns_sd_configs": [DnsSd(names=[Naming.tasks(service) for service in services], port=port)],
        "relabel_configs": [
            Relabel(source_labels=[DNS_NAME_LABEL], regex=Naming.tasks(service).replace(".", r"\."),
                    target_label=label, replacement=value)
            for service, labels in services.items() for label, value in labels.items()],
    }


@dataclass(frozen=True, kw_only=True)
class SwarmSlots:
    """runtime swarm: the app slots deployed and the one that takes traffic.

    The services found are named as settings/naming.py says: `<env>-app-<slot>`
    per slot, `<env>-flower`, `<env>-node-exporter`, and the worker
    `<env>-worker-<active slot>` that Flower reports on. Swarm's DNS answers
    `tasks.<service>` only on a network the asker shares with the service.
    """

    slots: Sequence[str]
    active_slot: str


@dataclass(frozen=True, kw_only=True)
class PrometheusSpec:
    """What prometheus.yml depends on. On docker, nothing that a release or a switch
    changes; on swarm (`swarm` set) also the deployed slots and the active one."""

    naming: Naming
    flower_user: str
    alerting: bool
    swarm: Optional[SwarmSlots] = None

    @property
    def reads_targets_files(self) -> bool:
        """Whether Prometheus reads the app and Celery targets from targets/<job>.json,
        which the caller writes into it (ScrapeTargets.files): not on swarm."""
        return self.swarm is None

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
        app, celery, node = self._swarm_targets() if self.swarm else (
            {"file_sd_configs": [FileSd(files=[targets_file("app")])]},
            {"file_sd_configs": [FileSd(files=[targets_file("celery")])]},
            {"static_configs": _static(f"{n.container('node-exporter')}:{NODE_EXPORTER_PORT}",
                                       n.container("node-exporter"))})
        jobs = [
            ScrapeConfig(job_name="prometheus",
                         static_configs=_static(f"localhost:{PROMETHEUS_PORT}", n.container("prometheus"))),
            ScrapeConfig(job_name="app", **app),
            # The worker's metrics come through Flower, which follows its events.
            # Basic auth: Flower versions differ on whether /metrics asks for it.
            ScrapeConfig(job_name="celery", **celery,
                         basic_auth=BasicAuth(username=self.flower_user, password_file=FLOWER_PASSWORD_FILE)),
            ScrapeConfig(job_name="postgres", static_configs=_static(
                f"{n.container('postgres-exporter')}:{POSTGRES_EXPORTER_PORT}", n.container("postgres"))),
            ScrapeConfig(job_name="redis", static_configs=_static(
                f"{n.container('redis-exporter')}:{REDIS_EXPORTER_PORT}", n.container("redis"))),
            # Qdrant's own /metrics; with an API key set it wants the key (Bearer accepted).
            ScrapeConfig(job_name="qdrant", authorization=Authorization(credentials_file=QDRANT_API_KEY_FILE),
                         static_configs=_static(f"{n.container('qdrant')}:{QDRANT_PORT}", n.container("qdrant"))),
            ScrapeConfig(job_name="node", **node),
        ]
        if self.alerting:
            jobs.append(ScrapeConfig(job_name="alertmanager", static_configs=_static(
                f"{n.container('alertmanager')}:{ALERTMANAGER_PORT}", n.container("alertmanager"))))
        return jobs

    def _swarm_targets(self) -> tuple[dict, dict, dict]:
        """The app, celery and node jobs' target fields on swarm: the tasks of each
        deployed slot, of Flower, and of node-exporter (one on every node)."""
        n, active = self.naming, self.swarm.active_slot
        slots = {n.app_service(slot): _app_labels(n.app_service(slot), slot, active)
                 for slot in sorted(self.swarm.slots)}
        flower = {n.container("flower"): _celery_labels(n.slot_container("worker", active), active)}
        node = {n.container("node-exporter"): {"container": n.container("node-exporter")}}
        return _tasks(slots, APP_PORT), _tasks(flower, FLOWER_PORT), _tasks(node, NODE_EXPORTER_PORT)

    def render(self) -> str:
        return header("Prometheus config", self.naming.env, "components/monitoring_config.py") + self.config().yaml()


@dataclass(frozen=True, kw_only=True)
class ScrapeTargets:
    """runtime docker: what a release or a switch changes: which app replicas and
    which worker exist.

    Every replica of every deployed slot is scraped, labelled with its slot and
    whether that slot takes traffic, so a switch shows as `active` moving.
    """

    slots: Mapping[str, Sequence[str]]  # slot -> replica container names
    active_slot: str
    worker: str  # the worker's container; Flower (below) reports on it
    flower: str

    def groups(self) -> dict[str, list[TargetGroup]]:
        app = [TargetGroup(targets=[f"{container}:{APP_PORT}"], labels=_app_labels(container, slot, self.active_slot))
               for slot in sorted(self.slots) for container in self.slots[slot]]
        celery = [TargetGroup(targets=[f"{self.flower}:{FLOWER_PORT}"],
                              labels=_celery_labels(self.worker, self.active_slot))]
        return {"app": app, "celery": celery}

    def files(self) -> dict[str, str]:
        """job -> the JSON of targets/<job>.json."""
        return {job: json.dumps([g.data() for g in groups], indent=2, sort_keys=True) + "\n"
                for job, groups in self.groups().items()}
