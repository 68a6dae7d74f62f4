"""Redis 7.2: Celery broker and cache, append-only, ACL users (redis_acl.py), the default user off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from components.host.containers import MEMORY_LIMIT_MB, Healthcheck
from components.host.docker_host import in_container
from components.data import redis_acl
from components.data.service import DataService, DataServiceArgs, DataServiceSpec
from components.secrets import secret_env


@dataclass(frozen=True, kw_only=True)
class RedisArgs(DataServiceArgs):
    """One password per ACL user (redis_acl.py): app, admin, backup, exporter."""

    app_password: pulumi.Input[str]
    admin_password: pulumi.Input[str]
    backup_password: pulumi.Input[str]
    exporter_password: pulumi.Input[str]


def _digest(password: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.secret(pulumi.Output.from_input(password).apply(redis_acl.sha256_hex))


# redis-cli in the Redis container (healthcheck, maxmemory step) logs in as the
# admin, its password in REDISCLI_AUTH (on a swarm, read from the admin's file).
ADMIN_CLI = redis_acl.admin_cli(swarm=False)


class Redis(DataService):
    def __init__(self, name: str, args: RedisArgs, opts: Optional[pulumi.ResourceOptions] = None):
        swarm = args.runtime.swarm
        self.admin_cli = redis_acl.admin_cli(swarm)
        # The values the server's config reads (redis_acl.py): the app's and the
        # exporter's as digests, still secret (a digest of a secret is one here).
        secrets: dict[str, pulumi.Input[str]] = {
            redis_acl.ADMIN_PASSWORD_ENV: args.admin_password,
            redis_acl.BACKUP_PASSWORD_ENV: args.backup_password,
            redis_acl.APP_PASSWORD_SHA256_ENV: _digest(args.app_password),
            redis_acl.EXPORTER_PASSWORD_SHA256_ENV: _digest(args.exporter_password),
        }
        # maxmemory leaves the container a quarter for fork-on-save and buffers,
        # read from the cgroup at start (and set live by `<env>-redis-maxmemory`
        # when the memory changes), so a memory change updates the container in
        # place. noeviction, not the guide's allkeys-lru: Redis is the Celery
        # broker, and evicting a queued task loses it silently; a full Redis
        # errors instead.
        # Through the image's entrypoint: given `redis-server` it drops from root
        # to the redis user (a bare `sh -c` would not).
        server = redis_acl.config_heredoc(
            "exec docker-entrypoint.sh redis-server - --appendonly yes "
            '--maxmemory "$((limit_mb * 3 / 4))mb" --maxmemory-policy noeviction')
        spec = DataServiceSpec(
            service="redis",
            data_path="/data",
            # The passwords come from the environment, not the command line, so
            # they are not in `docker inspect`'s Cmd; the users are written on
            # redis-server's stdin at start. REDISCLI_AUTH lets the healthcheck in.
            # On a swarm they are Swarm secrets (files, read by root before the
            # entrypoint drops to redis), and the environment holds only their
            # paths: a secret entry would hide the service's whole task spec.
            envs=[] if swarm else [*(secret_env(k, v) for k, v in secrets.items()),
                                   secret_env("REDISCLI_AUTH", args.admin_password)],
            file_secrets=secrets if swarm else {},
            command=["sh", "-c", f"{MEMORY_LIMIT_MB} && " + (redis_acl.from_files(server) if swarm else server)],
            healthcheck=Healthcheck(test=["CMD-SHELL", f"{self.admin_cli} ping | grep -q PONG"]),
        )
        self.memory_mb = args.memory_mb
        super().__init__("Redis", name, args, spec, opts)

    def _extend(self, args: RedisArgs) -> None:
        # A memory change updates the container in place; this sets the new
        # maxmemory in the running server (a restart reads it from the cgroup).
        self.maxmemory_step = self.deployed.host.command(
            f"{self.container_name}-maxmemory",
            create=in_container(self.deployed.target,
                                f'{MEMORY_LIMIT_MB} && {self.admin_cli} CONFIG SET maxmemory "$((limit_mb * 3 / 4))mb"'),
            triggers=[self.container.id, args.memory_mb],
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.deployed.ready),
        )
