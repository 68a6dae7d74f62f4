"""Monitoring at the level the environment asks for (`monitoring.level`).

basic        nothing here: every container already has a Docker healthcheck.
full         Prometheus scraping every app replica of every deployed slot, the
             Celery worker (through Flower), Qdrant, and exporters for
             PostgreSQL, Redis and the data volumes' disk (node-exporter, which
             also serves the backup job's textfile metrics).
full+alerts  plus the rule files and Alertmanager, with receivers from config.

All of it sits on the internal backend network and publishes no host port;
Alertmanager alone also joins a network of its own with a route out, to reach
the SMTP server and the webhook. What changes with a release or a switch (the
scrape targets) is written into the running Prometheus by a step; what changes
with settings (config, rules, credentials) is uploaded into the container,
which is then replaced with its TSDB kept on a volume (components/monitoring/prometheus.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_docker as docker

from components.monitoring import alertmanager as am
from components.monitoring import prometheus as mc
from components.host.containers import (
    ContainerSpec, Deployed, Healthcheck, hardened_container, labelled_volume, pulled_image,
)
from components.host.docker_host import DockerHost, in_container
from components.monitoring.rules import MEMORY_METRICS, RulesSpec, backup_stale_after
from components.host.networks import labelled_network
from components.data import redis_acl
from components.secrets import secret_env
from settings.model import BackupSchedule, ImagesConfig, MonitoringConfig, SmtpConfig
from settings.naming import POSTGRES_PORT, REDIS_PORT, Naming

TEXTFILE_DIR = "/textfile"


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs:
    naming: Naming
    host: DockerHost
    settings: MonitoringConfig
    images: ImagesConfig
    memory_mb: Mapping[str, int]
    backend_network: pulumi.Input[str]
    targets: mc.ScrapeTargets
    # Credentials Prometheus and the exporters present (secret Outputs).
    flower_user: str
    flower_password: pulumi.Input[str]
    postgres_user: str  # a pg_monitor role, not the superuser
    postgres_password: pulumi.Input[str]
    redis_exporter_password: pulumi.Input[str]
    qdrant_api_key: pulumi.Input[str]  # the read-only key: the scrape only reads
    backup_schedule: BackupSchedule
    # The backup job's textfile volume; None while there is no backup component.
    backup_metrics_volume: Optional[pulumi.Input[str]]
    smtp: Optional[SmtpConfig] = None
    smtp_password: Optional[pulumi.Input[str]] = None
    webhook_url: Optional[pulumi.Input[str]] = None
    # The exporters start after the data services; the targets are written after the replicas exist.
    data_services: Sequence[pulumi.Resource] = ()
    scrape_after: Sequence[pulumi.Resource] = ()


def _wget(url: str) -> Healthcheck:
    # The prom/* and exporter images are busybox-based: wget, no curl.
    return Healthcheck(test=["CMD", "wget", "-q", "-O", "/dev/null", url], interval="30s")


def _upload(path: str, content: pulumi.Input[str]) -> docker.ContainerUploadArgs:
    return docker.ContainerUploadArgs(file=path, content=content)


class Monitoring(pulumi.ComponentResource):
    container_names: list[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:monitoring:Monitoring", name, None, opts)
        self._args = args
        self.level = args.settings.level
        self.container_names = []
        if self.level != "basic":
            alerting = self.level == "full+alerts"
            self._postgres_exporter()
            self._redis_exporter()
            self._node_exporter()
            if alerting:
                self._alertmanager()
            self._targets(self._prometheus(alerting))
        self.register_outputs({"level": self.level, "containers": self.container_names})

    # -- helpers -------------------------------------------------------------

    def _child(self, **kw) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kw)

    def _container(self, service: str, *, networks: Optional[list] = None,
                   depends_on: Sequence[pulumi.Resource] = (), **spec) -> Deployed:
        """A hardened container named and labelled for `service`, on the backend network."""
        n = self._args.naming
        name = n.container(service)
        image = pulled_image(f"{name}-image", getattr(self._args.images, service.replace("-", "_")), self._child())
        deployed = hardened_container(
            ContainerSpec(name=name, image=image.name, environment=n.env, service=service,
                          memory_mb=self._args.memory_mb[service], host=self._args.host,
                          networks=networks or [(self._args.backend_network, [service])], **spec),
            # Fixed names: the old container goes before its replacement starts.
            self._child(delete_before_replace=True, depends_on=list(depends_on)),
        )
        self.container_names.append(name)
        return deployed

    def _volume(self, name: str, service: str) -> docker.Volume:
        # Not protected, and so not named `_data`: metrics history and silences are
        # worth less than being able to lower the monitoring level without a
        # manual unprotect.
        return labelled_volume(name, environment=self._args.naming.env, service=service, opts=self._child())

    # -- exporters -----------------------------------------------------------

    def _postgres_exporter(self) -> None:
        n, a = self._args.naming, self._args
        self._container(
            "postgres-exporter",
            envs=[
                f"DATA_SOURCE_URI={n.container('postgres')}:{POSTGRES_PORT}/{n.database}?sslmode=disable",
                f"DATA_SOURCE_USER={a.postgres_user}",
                secret_env("DATA_SOURCE_PASS", a.postgres_password),
            ],
            healthcheck=_wget(f"http://localhost:{mc.POSTGRES_EXPORTER_PORT}/"),
            depends_on=a.data_services,
        )

    def _redis_exporter(self) -> None:
        n, a = self._args.naming, self._args
        self._container(
            "redis-exporter",
            envs=[
                f"REDIS_ADDR=redis://{n.container('redis')}:{REDIS_PORT}",
                f"REDIS_USER={redis_acl.EXPORTER_USER}",
                secret_env("REDIS_PASSWORD", a.redis_exporter_password),
            ],
            healthcheck=_wget(f"http://localhost:{mc.REDIS_EXPORTER_PORT}/health"),
            depends_on=a.data_services,
        )

    def _node_exporter(self) -> None:
        """Only two collectors: the disk under the Docker volumes, and the backup textfile."""
        n, a = self._args.naming, self._args
        probe = self._volume(n.volume("node_exporter", "probe"), "node-exporter")
        volumes = [docker.ContainerVolumeArgs(volume_name=probe.name, container_path=mc.DISK_PROBE_PATH,
                                              read_only=True)]
        command = ["--collector.disable-defaults", "--collector.filesystem"]
        if a.backup_metrics_volume is not None:
            volumes.append(docker.ContainerVolumeArgs(volume_name=a.backup_metrics_volume,
                                                      container_path=TEXTFILE_DIR, read_only=True))
            command += ["--collector.textfile", f"--collector.textfile.directory={TEXTFILE_DIR}"]
        self._container("node-exporter", command=command, volumes=volumes,
                        healthcheck=_wget(f"http://localhost:{mc.NODE_EXPORTER_PORT}/"))

    # -- alerting ------------------------------------------------------------

    def _alertmanager(self) -> None:
        n, a = self._args.naming, self._args
        emails = a.settings.alert_email
        spec = am.AlertmanagerSpec(environment=n.env, emails=emails, smtp=a.smtp,
                                   smtp_password=bool(emails) and a.smtp_password is not None)
        if not emails and a.webhook_url is None:
            pulumi.log.warn(f"{n.env}: alerts have no receiver; set monitoring.alertEmail (with smtp) "
                            "or the secret alertWebhookUrl", resource=self)
        config: pulumi.Input[str] = spec.render()
        if a.webhook_url is not None:
            config = pulumi.Output.secret(a.webhook_url).apply(
                lambda url: dataclasses.replace(spec, webhook_url=url).render())
        uploads = [_upload(f"{am.CONFIG_DIR}/{am.CONFIG_FILE}", config)]
        if spec.smtp_password:
            uploads.append(_upload(am.SMTP_PASSWORD_FILE, pulumi.Output.secret(a.smtp_password)))
        # Its own network with a route out; the backend one is internal.
        egress = labelled_network(n.network("alerting"), environment=n.env, opts=self._child())
        data = self._volume(n.volume("alertmanager", "state"), "alertmanager")
        self._container(
            "alertmanager",
            command=[f"--config.file={am.CONFIG_DIR}/{am.CONFIG_FILE}", "--storage.path=/alertmanager",
                     # One instance: no gossip port.
                     "--cluster.listen-address="],
            networks=[(a.backend_network, ["alertmanager"]), (egress.name, ["alertmanager"])],
            volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path="/alertmanager")],
            uploads=uploads,
            healthcheck=_wget(f"http://localhost:{mc.ALERTMANAGER_PORT}/-/ready"),
        )

    # -- Prometheus ----------------------------------------------------------

    def _prometheus(self, alerting: bool) -> Deployed:
        n, a = self._args.naming, self._args
        config_path = f"{mc.CONFIG_DIR}/{mc.CONFIG_FILE}"
        uploads = [
            _upload(config_path, mc.PrometheusSpec(naming=n, flower_user=a.flower_user, alerting=alerting).render()),
            _upload(f"{mc.CONFIG_DIR}/{mc.QDRANT_API_KEY_FILE}", pulumi.Output.secret(a.qdrant_api_key)),
            _upload(f"{mc.CONFIG_DIR}/{mc.FLOWER_PASSWORD_FILE}", pulumi.Output.secret(a.flower_password)),
        ]
        if alerting:
            uploads += [_upload(f"{mc.CONFIG_DIR}/{mc.RULES_DIR}/{file}", text)
                        for file, text in self._rules_spec().files().items()]
        data = self._volume(n.volume("prometheus", "tsdb"), "prometheus")
        return self._container(
            "prometheus",
            command=[f"--config.file={config_path}", "--storage.tsdb.path=/prometheus",
                     f"--storage.tsdb.retention.time={a.settings.retention_days}d"],
            volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path="/prometheus")],
            uploads=uploads,
            healthcheck=_wget(f"http://localhost:{mc.PROMETHEUS_PORT}/-/ready"),
        )

    def _rules_spec(self) -> RulesSpec:
        a = self._args
        # No textfile to read means no evidence either way: no backup or WAL rules then.
        # With one, WAL archiving is watched whatever the schedule: every stack archives.
        textfile = a.backup_metrics_volume is not None
        stale_after = backup_stale_after(a.backup_schedule) if textfile else {}
        return RulesSpec(environment=a.naming.env, memory_limit_mb={job: a.memory_mb[job] for job in MEMORY_METRICS},
                         backup_stale_after=stale_after, wal_archiving=textfile)

    def _targets(self, prometheus: Deployed) -> None:
        """One step per targets file, into the running Prometheus: written aside, then
        renamed, so Prometheus never reads half a file. No reload: file_sd sees it."""
        n, a = self._args.naming, self._args
        for job, content in a.targets.files().items():
            path = f"{mc.CONFIG_DIR}/{mc.targets_file(job)}"
            script = f'set -eu; mkdir -p "$(dirname {path})"; cat > {path}.next; mv {path}.next {path}'
            a.host.command(
                f"{n.env}-prometheus-targets-{job}",
                create=in_container(n.container("prometheus"), script, stdin=True),
                stdin=content,
                # Again on a new container: its filesystem starts without targets.
                triggers=[prometheus.container.id],
                opts=self._child(depends_on=[*prometheus.ready, *a.scrape_after]),
            )
