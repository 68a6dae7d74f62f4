"""shia-chatbot: the whole platform on one stack's Docker host, or on a Docker
Swarm of several (`runtime: swarm`, docs/swarm.md).

Reads the stack config once and checks it against the last deployment (a bad
value, or an update that would cost live traffic, stops here, before any
resource), then wires one component per service. The blue/green path reads top
to bottom: data services and backups, app slots (each: backup, migrate,
replicas, smoke check), worker and Flower on the active slot, the router, then
monitoring.
"""

import pulumi

from components.app.slot import AppSlot, AppSlotArgs
from components.app.environment import AppEnvironment
from components.backups.backups import Backups, BackupsArgs
from components.host.docker_host import DockerHost, DockerHostArgs
from components.data.minio import Minio, MinioArgs
from components.monitoring.monitoring import Monitoring, MonitoringArgs
from components.monitoring.prometheus import ScrapeTargets
from components.host.networks import Networks, NetworksArgs
from components.host.runtime import Runtime
from components.backups.offsite import offsite_target
from components.backups.pgbackrest import PgBackRest, PgBackRestArgs
from components.data.postgres import Postgres, PostgresArgs
from components.data.qdrant import Qdrant, QdrantArgs
from components.data.redis import Redis, RedisArgs
from components.router.router import HTTP_PORT, HTTPS_PORT, Router, RouterArgs
from components.router.nginx_config import RouterSpec, TlsFiles
from components.secrets import Secrets, SecretsArgs
from components.app.worker import CeleryArgs, Flower, FlowerArgs, Worker
from components.swarm.nodes import SwarmNodes, SwarmNodesArgs
from settings import load, release_guard
from settings.naming import Naming
from settings.secret_names import DATABASE_ROLES

cfg = load.load()
release_guard.check(cfg)
naming = Naming(cfg.environment)
env = cfg.environment

host = DockerHost(naming.resource("docker-host"), DockerHostArgs(docker_host=cfg.docker_host,
                                                                host_key=cfg.docker_host_key, registry=cfg.registry))
on_host = pulumi.ResourceOptions(providers=[host.provider])

secrets = Secrets(naming.resource("secrets"), SecretsArgs(naming=naming, rotation=cfg.rotation))
swarm_nodes = None
if cfg.runtime == "swarm":
    # Each node labelled with its roles, before anything is placed by them.
    swarm_nodes = SwarmNodes(naming.resource("swarm-nodes"), SwarmNodesArgs(nodes=cfg.nodes, manager=host,
                                                                             registry=cfg.registry))
runtime = Runtime(host, swarm_nodes)
# What is local to the data node (the data services' volumes and images, the
# backup job's): on one host, the host.
on_data = pulumi.ResourceOptions(providers=[runtime.node_host("data").provider])
networks = Networks(naming.resource("networks"), NetworksArgs(naming=naming, overlay=runtime.swarm), on_host)
frontend, backend = runtime.network(networks.frontend), runtime.network(networks.backend)


def data_args(service: str) -> dict:
    return dict(naming=naming, image=getattr(cfg.images, service), memory_mb=cfg.memory_mb[service],
                backend_network=backend, runtime=runtime)


offsite = offsite_target(cfg, naming, secrets)
# PostgreSQL archives its WAL into pgBackRest's repositories from its first start.
pgbackrest = PgBackRest(naming.resource("pgbackrest"), PgBackRestArgs(
    naming=naming, config=cfg.backups, offsite=offsite, database_user=naming.database_role("backup")), on_data)
postgres = Postgres(naming.container("postgres"), PostgresArgs(
    **data_args("postgres"), password=secrets["postgresPassword"], archive=pgbackrest,
    role_passwords={purpose: secrets[name] for purpose, name in DATABASE_ROLES.items()},
    max_connections=cfg.postgres_max_connections), on_data)
redis = Redis(naming.container("redis"), RedisArgs(**data_args("redis"), app_password=secrets["redisPassword"],
                                                        admin_password=secrets["redisAdminPassword"],
                                                        backup_password=secrets["redisBackupPassword"],
                                                        exporter_password=secrets["redisExporterPassword"]), on_data)
qdrant = Qdrant(naming.container("qdrant"), QdrantArgs(**data_args("qdrant"), api_key=secrets["qdrantApiKey"],
                                                       read_only_api_key=secrets["qdrantReadOnlyApiKey"]), on_data)
minio = Minio(naming.container("minio"), MinioArgs(
    **data_args("minio"), root_user=secrets["minioRootUser"], root_password=secrets["minioRootPassword"],
    app_password=secrets["minioAppPassword"], backup_password=secrets["minioBackupPassword"]),
    on_data)
data_services = [*postgres.ready, *redis.ready, *qdrant.ready, *minio.ready]

# Scheduled and pre-migration backups of all four, copied off-site (S3 or dev's MinIO).
backups = Backups(naming.container("backup"), BackupsArgs(
    naming=naming, config=cfg.backups, base_image=cfg.images.backup_base, minio_image=cfg.images.minio,
    redis_image=cfg.images.redis, memory_mb=cfg.memory_mb["backup"], backend_network=backend,
    postgres=postgres, pgbackrest=pgbackrest, redis=redis, qdrant=qdrant, minio=minio, secrets=secrets,
    offsite=offsite, runtime=runtime), on_data)

app_environment = AppEnvironment(cfg=cfg, naming=naming, secrets=secrets)
# The app's variables with the secret ones apart (files on a swarm); the
# migrations get theirs on stdin, in both runtimes.
app_env, migration_envs = app_environment.swarm_envs("app"), app_environment.envs("owner")


def app_slot(slot: str, migrate_after: list) -> AppSlot:
    spec = cfg.slots[slot]
    return AppSlot(naming.resource(f"app-{slot}"), AppSlotArgs(
        naming=naming, slot=slot, image=spec.image, replicas=spec.replicas,
        uvicorn_workers=cfg.uvicorn_workers, memory_mb=cfg.memory_mb["app"], env=app_env, migration_envs=migration_envs,
        frontend_network=frontend, backend_network=backend,
        runtime=runtime, probe_image=cfg.images.nginx, depends_on=[*data_services, *backups.ready],
        backup_command=backups.pre_migration_command(slot), backup_host=backups.deployed.host,
        migrate_after=migrate_after), on_host)


# The active slot first; any other slot migrates after it, never at the same time.
active = app_slot(cfg.active_slot, migrate_after=[])
slots = {cfg.active_slot: active}
for idle in sorted(set(cfg.slots) - {cfg.active_slot}):
    slots[idle] = app_slot(idle, migrate_after=[active.migration])

celery = dict(naming=naming, slot=cfg.active_slot, image=active.image, env=app_env, log_level=cfg.app.log_level,
              runtime=runtime, frontend_network=frontend, backend_network=backend,
              depends_on=[*redis.ready, *postgres.ready, active.migration])
worker = Worker(naming.resource("worker"), CeleryArgs(**celery, memory_mb=cfg.memory_mb["worker"]), on_host)
flower = Flower(naming.resource("flower"), FlowerArgs(
    **celery, memory_mb=cfg.memory_mb["flower"], user=naming.flower_user,
    password=secrets["flowerPassword"], publish=cfg.publish_flower), on_host)

tls_files = None
if cfg.tls.enabled:
    live = f"{cfg.tls.certificate_dir}/live/{cfg.domain}"
    tls_files = TlsFiles(certificate=f"{live}/fullchain.pem", key=f"{live}/privkey.pem")
router = Router(naming.resource("router"), RouterArgs(
    naming=naming, runtime=runtime, image=cfg.images.nginx, memory_mb=cfg.memory_mb["nginx"],
    spec=RouterSpec(
        environment=env, server_name=cfg.domain or "localhost", http_port=HTTP_PORT,
        https_port=HTTPS_PORT if tls_files else None, tls=tls_files, rate_per_minute=cfg.app.rate_limit_per_minute,
    ),
    active_slot=cfg.active_slot,
    published_http_port=cfg.http_port, published_https_port=cfg.https_port if tls_files else None,
    tls=cfg.tls, frontend_network=frontend, switch_after=[active.smoke_check],
), on_host)

# Monitoring at the environment's level. A switch or a replica change alters
# only `targets`, which reach the running Prometheus without replacing it.
monitoring = Monitoring(naming.resource("monitoring"), MonitoringArgs(
    naming=naming, runtime=runtime, settings=cfg.monitoring, images=cfg.images, memory_mb=cfg.memory_mb,
    backend_network=networks.backend.name, backend_network_ref=backend,
    slot_replicas={slot: spec.replicas for slot, spec in cfg.slots.items()},
    targets=ScrapeTargets(slots={s: a.container_names for s, a in slots.items()}, active_slot=cfg.active_slot,
                          worker=worker.container_name, flower=flower.container_name),
    flower_user=naming.flower_user, flower_password=secrets["flowerPassword"],
    postgres_user=naming.database_role("monitor"), postgres_password=secrets["postgresMonitorPassword"],
    redis_exporter_password=secrets["redisExporterPassword"],
    qdrant_api_key=secrets["qdrantReadOnlyApiKey"],
    backup_schedule=cfg.backups.schedule, backup_metrics_volume=backups.metrics_volume.name,
    smtp=cfg.smtp, smtp_password=secrets.provider_keys.get("SMTP_PASSWORD"),
    webhook_url=secrets.alert_webhook_url,
    data_services=data_services,
    scrape_after=[*(c for a in slots.values() for c in a.containers), worker.container, flower.container],
), on_host)

pulumi.export("environment", env)
pulumi.export("url", cfg.public_url)
# The release guard reads these back. Each resolves only once the step that
# makes it true has succeeded: the engine keeps whatever outputs a failed update
# did register (pulumi/pulumi#15754), so a failed switch must not record the
# new slot as active, nor a failed release its image as released.
pulumi.export("activeSlot", pulumi.Output.all(*(step.id for step in router.switch_steps)).apply(
    lambda _: cfg.active_slot))
pulumi.export("slots", {s: {"image": a.smoke_check.id.apply(lambda _, image=a.image_ref: image),
                            "containers": a.container_names} for s, a in sorted(slots.items())})
pulumi.export("containers", {
    "nginx": router.container_name, "worker": worker.container_name, "flower": flower.container_name,
    "postgres": postgres.container_name, "redis": redis.container_name,
    "qdrant": qdrant.container_name, "minio": minio.container_name,
})
pulumi.export("database", naming.database)
pulumi.export("collection", naming.collection)
pulumi.export("buckets", minio.buckets)
pulumi.export("backupBucket", backups.bucket)
pulumi.export("routerConfigSha256", router.config_digest)
pulumi.export("flowerUser", naming.flower_user)
pulumi.export("flowerPassword", secrets["flowerPassword"])
pulumi.export("monitoring", {"level": monitoring.level, "containers": monitoring.container_names})
