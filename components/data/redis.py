"""Redis 7.2: Celery broker and cache, append-only, password required."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from components.host.containers import MEMORY_LIMIT_MB, Healthcheck
from components.host.docker_host import in_container
from components.data.service import DataService, DataServiceArgs, DataServiceSpec
from components.secrets import secret_env


@dataclass(frozen=True, kw_only=True)
class RedisArgs(DataServiceArgs):
    password: pulumi.Input[str]


class Redis(DataService):
    def __init__(self, name: str, args: RedisArgs, opts: Optional[pulumi.ResourceOptions] = None):
        # maxmemory leaves the container a quarter for fork-on-save and buffers,
        # read from the cgroup at start (and set live by `<env>-redis-maxmemory`
        # when the memory changes), so a memory change updates the container in
        # place. noeviction, not the guide's allkeys-lru: Redis is the Celery
        # broker, and evicting a queued task loses it silently; a full Redis
        # errors instead.
        spec = DataServiceSpec(
            service="redis",
            data_path="/data",
            # The password comes from the environment, not the command line, so it
            # is not in `docker inspect`'s Cmd; REDISCLI_AUTH lets the healthcheck in.
            envs=[
                secret_env("REDIS_PASSWORD", args.password),
                secret_env("REDISCLI_AUTH", args.password),
            ],
            command=[
                "sh", "-c",
                # Through the image's entrypoint: given `redis-server` it drops
                # from root to the redis user (a bare `sh -c` would not).
                f"{MEMORY_LIMIT_MB} && exec docker-entrypoint.sh redis-server --appendonly yes "
                '--requirepass "$REDIS_PASSWORD" --maxmemory "$((limit_mb * 3 / 4))mb" '
                "--maxmemory-policy noeviction",
            ],
            healthcheck=Healthcheck(test=["CMD-SHELL", "redis-cli ping | grep -q PONG"]),
        )
        self.memory_mb = args.memory_mb
        super().__init__("Redis", name, args, spec, opts)

    def _extend(self, args: RedisArgs) -> None:
        # A memory change updates the container in place; this sets the new
        # maxmemory in the running server (a restart reads it from the cgroup).
        self.maxmemory_step = args.host.command(
            f"{self.container_name}-maxmemory",
            create=in_container(self.container_name,
                                f'{MEMORY_LIMIT_MB} && redis-cli CONFIG SET maxmemory "$((limit_mb * 3 / 4))mb"'),
            triggers=[self.container.id, args.memory_mb],
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.deployed.ready),
        )
