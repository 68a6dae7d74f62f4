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

On a swarm (docs/swarm.md) Prometheus, Alertmanager and the PostgreSQL and
Redis exporters stay containers on the manager, on the attachable overlay
networks, their volumes local to it; node-exporter is a global service, one
task per node. Prometheus finds the app, Flower and node-exporter tasks by
DNS (`tasks.<service>`), and its whole configuration (which names the active
slot, the deployed slots and their replicas) is written into the running
container by one step, `<env>-prometheus-config`, then reloaded (SIGHUP): a
switch or a release changes a file, not the container.
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
from components.host.docker_host import in_container
from components.host.runtime import Runtime
from components.swarm.service import Placement
from components.monitoring.rules import MEMORY_METRICS, RulesSpec, backup_stale_after
from components.host.networks import labelled_network
from components.data import redis_acl
from components.secrets import secret_env
from settings.model import BackupSchedule, ImagesConfig, MonitoringConfig, SmtpConfig
from settings.naming import POSTGRES_PORT, REDIS_PORT, Naming

TEXTFILE_DIR = "/textfile"
# SIGHUP to Prometheus (PID 1), then wait until its last successful reload is
# newer than the signal, failing if the reload failed (its metrics say which).
RELOAD_SCRIPT = f"""\
sent=$(date +%s)
kill -HUP 1
for attempt in $(seq 1 60); do
    metrics=$(wget -q -O - http://localhost:{mc.PROMETHEUS_PORT}/metrics)
    if printf '%s\\n' "$metrics" | grep -q '^prometheus_config_last_reload_successful 0'; then
        echo "prometheus: the new configuration was refused" >&2; exit 1
    fi
    # The timestamp may be printed as 1.7e+09: compared by awk, not by the shell.
    if printf '%s\\n' "$metrics" | awk -v sent="$sent" \\
            '$1 == "prometheus_config_last_reload_success_timestamp_seconds" && $2 + 0 >= sent {{ok = 1}} END {{exit !ok}}'
    then echo "prometheus: configuration reloaded"; exit 0; fi
    sleep 1
done
echo "prometheus: no reload within 60s" >&2; exit 1"""


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs:
    naming: Naming
    runtime: Runtime
    settings: MonitoringConfig
    images: ImagesConfig
    memory_mb: Mapping[str, int]
    backend_network: pulumi.Input[str]  # by name: Prometheus and the exporters are containers
    # Runtime.network's form, for node-exporter (a service on a swarm).
    backend_network_ref: pulumi.Input[str]
    targets: mc.ScrapeTargets
    # runtime swarm: slot -> replicas, for the "fewer running tasks than replicas" alert.
    slot_replicas: Mapping[str, int]
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
            prometheus = self._prometheus(alerting)
            if not args.runtime.swarm:  # on a swarm, part of the config step
                self._targets(prometheus)
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
                          memory_mb=self._args.memory_mb[service], host=self._args.runtime.host,
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
        """Only two collectors: the disk under the Docker volumes, and the backup
        textfile. On a swarm one task per node, each with the probe volume of its
        node; the textfile volume is the data node's (elsewhere Docker makes an
        empty one of that name)."""
        n, a = self._args.naming, self._args
        runtime = a.runtime
        probe_name = n.volume("node_exporter", "probe")
        probes = [labelled_volume(f"{probe_name}-{node}" if runtime.swarm else probe_name, environment=n.env,
                                  service="node-exporter", volume_name=probe_name,
                                  opts=self._child(provider=host.provider) if runtime.swarm else self._child())
                  for node, host in runtime.node_hosts(None).items()]
        volumes = [docker.ContainerVolumeArgs(volume_name=probes[0].name, container_path=mc.DISK_PROBE_PATH,
                                              read_only=True)]
        command = ["--collector.disable-defaults", "--collector.filesystem"]
        if a.backup_metrics_volume is not None:
            volumes.append(docker.ContainerVolumeArgs(volume_name=a.backup_metrics_volume,
                                                      container_path=TEXTFILE_DIR, read_only=True))
            command += ["--collector.textfile", f"--collector.textfile.directory={TEXTFILE_DIR}"]
        spec = dict(command=command, volumes=volumes, healthcheck=_wget(f"http://localhost:{mc.NODE_EXPORTER_PORT}/"))
        if not runtime.swarm:
            self._container("node-exporter", **spec)
            return
        name = n.container("node-exporter")
        image = pulled_image(f"{name}-image", a.images.node_exporter, self._child())
        runtime.deploy(
            ContainerSpec(name=name, image=runtime.image(image), environment=n.env, service="node-exporter",
                          memory_mb=a.memory_mb["node-exporter"], host=runtime.host,
                          networks=[(a.backend_network_ref, ["node-exporter"])], **spec),
            Placement(role=None, replicas=None), self._child(depends_on=probes))
        self.container_names.append(name)

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
        files = self._prometheus_files(alerting)
        # On a swarm the files are written by `<env>-prometheus-config` instead
        # (it starts on the image's own config, for the seconds until then).
        uploads = [] if a.runtime.swarm else [_upload(path, content) for path, content in files.items()]
        data = self._volume(n.volume("prometheus", "tsdb"), "prometheus")
        deployed = self._container(
            "prometheus",
            command=[f"--config.file={config_path}", "--storage.tsdb.path=/prometheus",
                     f"--storage.tsdb.retention.time={a.settings.retention_days}d"],
            volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path="/prometheus")],
            uploads=uploads,
            healthcheck=_wget(f"http://localhost:{mc.PROMETHEUS_PORT}/-/ready"),
        )
        if a.runtime.swarm:
            self._write_config(deployed, files)
        return deployed

    def _prometheus_files(self, alerting: bool) -> dict[str, pulumi.Input[str]]:
        """Path under /etc/prometheus -> content: prometheus.yml, the secrets it
        reads, and the rule files."""
        n, a = self._args.naming, self._args
        swarm = mc.SwarmSlots(slots=sorted(a.slot_replicas), active_slot=a.targets.active_slot) \
            if a.runtime.swarm else None
        files: dict[str, pulumi.Input[str]] = {
            f"{mc.CONFIG_DIR}/{mc.CONFIG_FILE}": mc.PrometheusSpec(
                naming=n, flower_user=a.flower_user, alerting=alerting, swarm=swarm).render(),
            f"{mc.CONFIG_DIR}/{mc.QDRANT_API_KEY_FILE}": pulumi.Output.secret(a.qdrant_api_key),
            f"{mc.CONFIG_DIR}/{mc.FLOWER_PASSWORD_FILE}": pulumi.Output.secret(a.flower_password),
        }
        if alerting:
            files.update({f"{mc.CONFIG_DIR}/{mc.RULES_DIR}/{file}": text
                          for file, text in self._rules_spec().files().items()})
        return files

    def _write_config(self, prometheus: Deployed, files: Mapping[str, pulumi.Input[str]]) -> None:
        """runtime swarm: `files` written into the running Prometheus (each aside,
        then renamed; rule files no longer rendered removed), checked with its
        promtool, then reloaded by SIGHUP; passes once the reload succeeded."""
        n, a = self._args.naming, self._args
        paths = sorted(files)

        def script(contents: list[str]) -> str:
            out = ["set -eu", f"rm -f {mc.CONFIG_DIR}/{mc.RULES_DIR}/*.yml"]
            for path, content in zip(paths, contents):
                out += [f'mkdir -p "$(dirname {path})"', f"cat > {path}.next <<'SHIA_CHATBOT_FILE_END'",
                        content.rstrip("\n"), "SHIA_CHATBOT_FILE_END", f"mv {path}.next {path}"]
            return "\n".join(out + [f"promtool check config {mc.CONFIG_DIR}/{mc.CONFIG_FILE} > /dev/null",
                                    RELOAD_SCRIPT]) + "\n"

        a.runtime.host.command(
            f"{n.env}-prometheus-config",
            # The files travel on stdin (some are secrets), read by the container's sh.
            create=in_container(prometheus.target, "exec sh -s", stdin=True),
            stdin=pulumi.Output.all(*(files[p] for p in paths)).apply(script),
            # Again on a new container: it starts on the image's own config.
            triggers=[prometheus.container.id],
            opts=self._child(depends_on=[*prometheus.ready, *a.scrape_after]),
        )

    def _rules_spec(self) -> RulesSpec:
        a = self._args
        # No textfile to read means no evidence either way: no backup or WAL rules then.
        # With one, WAL archiving is watched whatever the schedule: every stack archives.
        textfile = a.backup_metrics_volume is not None
        stale_after = backup_stale_after(a.backup_schedule) if textfile else {}
        return RulesSpec(environment=a.naming.env, memory_limit_mb={job: a.memory_mb[job] for job in MEMORY_METRICS},
                         backup_stale_after=stale_after, wal_archiving=textfile,
                         slot_replicas=a.slot_replicas if a.runtime.swarm else {})

    def _targets(self, prometheus: Deployed) -> None:
        """One step per targets file, into the running Prometheus: written aside, then
        renamed, so Prometheus never reads half a file. No reload: file_sd sees it."""
        n, a = self._args.naming, self._args
        for job, content in a.targets.files().items():
            path = f"{mc.CONFIG_DIR}/{mc.targets_file(job)}"
            script = f'set -eu; mkdir -p "$(dirname {path})"; cat > {path}.next; mv {path}.next {path}'
            a.runtime.host.command(
                f"{n.env}-prometheus-targets-{job}",
                create=in_container(n.container("prometheus"), script, stdin=True),
                stdin=content,
                # Again on a new container: its filesystem starts without targets.
                triggers=[prometheus.container.id],
                opts=self._child(depends_on=[*prometheus.ready, *a.scrape_after]),
            )
