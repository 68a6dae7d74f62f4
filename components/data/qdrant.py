"""Qdrant: the vector store (collection `<env>_documents`), API key required.

Qdrant reads its keys from its environment (QDRANT__SERVICE__API_KEY,
QDRANT__SERVICE__READ_ONLY_API_KEY) or from its configuration files, never from
a `<VAR>_FILE`. On one host they are secret environment entries. On a swarm an
environment entry would make the SDK hide the service's whole task spec and
show the keys to `docker service inspect` (docs/swarm.md), so there the keys
are a Swarm secret mounted as Qdrant's own `config/local.yaml`, and the
environment holds none.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_docker as docker

from components.host.containers import ContainerSpec, Deployed, Healthcheck
from components.host.runtime import Runtime, task_of
from components.data.service import DataService, DataServiceArgs, DataServiceSpec
from components.secrets import secret_env
from components.swarm.secrets import swarm_secret
from components.swarm.service import Placement, swarm_service

API_KEY_ENV = "QDRANT__SERVICE__API_KEY"
READ_ONLY_API_KEY_ENV = "QDRANT__SERVICE__READ_ONLY_API_KEY"
# Qdrant merges, later over earlier: its built-in config/config.yaml, then
# config/config, config/<RUN_MODE> (the image sets `production`) and
# config/local (any of config-rs's extensions: .yaml), each relative to its
# working directory /qdrant and optional, then QDRANT__* from the environment
# (qdrant/qdrant v1.12.4, src/settings.rs, Settings::new; unchanged in 1.19).
# config/local.yaml is in no image: a file mounted there adds to the image's
# files without replacing them.
LOCAL_CONFIG = "/qdrant/config/local.yaml"


def local_config(api_key: str, read_only_api_key: str) -> str:
    """config/local.yaml with the keys (a JSON string is a YAML scalar, quoted whatever it holds)."""
    return (f"service:\n  api_key: {json.dumps(api_key)}\n"
            f"  read_only_api_key: {json.dumps(read_only_api_key)}\n")


def secret_path_name(path: str) -> str:
    """A Swarm secret's name part for a file mounted at `path` ("/qdrant/config/local.yaml" -> "qdrant-config-local-yaml")."""
    return path.strip("/").replace("/", "-").replace(".", "-").replace("_", "-").lower()


@dataclass(frozen=True, kw_only=True)
class QdrantArgs(DataServiceArgs):
    api_key: pulumi.Input[str]
    # Qdrant's read-only key (GET only): what the monitoring scrape uses.
    read_only_api_key: pulumi.Input[str]


@dataclass(frozen=True)
class _SecretPathsRuntime(Runtime):
    """Runtime.deploy plus Swarm secrets mounted at absolute paths.

    Interim: what Runtime.deploy's proposed `secret_paths` parameter does (with
    SecretFile.path taking an absolute file name, and DataServiceSpec passing
    `secret_paths` through). Once it lands, Qdrant sets
    DataServiceSpec(secret_paths={LOCAL_CONFIG: ...}) and this class goes."""

    secret_paths: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)

    def deploy(self, spec: ContainerSpec, placement: Placement, opts: pulumi.ResourceOptions, *,
               file_secrets: Optional[Mapping[str, pulumi.Input[str]]] = None, secrets_owner: Optional[str] = "0",
               **kwargs) -> Deployed:
        if self.nodes is None or not self.secret_paths:
            return super().deploy(spec, placement, opts, file_secrets=file_secrets, secrets_owner=secrets_owner,
                                  **kwargs)
        if file_secrets:
            raise ValueError(f"{spec.name}: file_secrets and secret_paths together are not supported here")
        on_manager = pulumi.ResourceOptions(parent=opts.parent, provider=self.host.provider)
        mounts = []
        for path, value in sorted(self.secret_paths.items()):
            file = swarm_secret(f"{spec.name}-{secret_path_name(path)}", path, value, on_manager)
            # SecretFile.mount with the path as it is (its `path` puts a file under /run/secrets).
            mounts.append(docker.ServiceTaskSpecContainerSpecSecretArgs(
                secret_id=file.secret.id, secret_name=file.secret.name, file_name=path,
                file_uid=secrets_owner or "0", file_gid=secrets_owner or "0",
                file_mode=0o400 if secrets_owner is not None else 0o444))
        service = swarm_service(
            spec, placement, spec.networks,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                provider=self.host.provider, depends_on=[self.nodes.labels_step])),
            secrets=mounts)
        return Deployed(service, service, host=self._exec_host(placement), target=task_of(spec.name))


class Qdrant(DataService):
    def __init__(self, name: str, args: QdrantArgs, opts: Optional[pulumi.ResourceOptions] = None):
        swarm = args.runtime.swarm
        keys = [] if swarm else [secret_env(API_KEY_ENV, args.api_key),
                                 secret_env(READ_ONLY_API_KEY_ENV, args.read_only_api_key)]
        spec = DataServiceSpec(
            service="qdrant",
            data_path="/qdrant/storage",
            envs=[*keys, "QDRANT__TELEMETRY_DISABLED=true"],
            # The image has no curl; the guide's TCP probe works with its bash.
            healthcheck=Healthcheck(test=["CMD-SHELL", "timeout 1 bash -c '</dev/tcp/127.0.0.1/6333'"]),
        )
        if swarm:
            # Read by Qdrant as root (the image's user), mode 0400.
            config = pulumi.Output.secret(pulumi.Output.all(args.api_key, args.read_only_api_key).apply(
                lambda k: local_config(k[0], k[1])))
            runtime = args.runtime
            args = dataclasses.replace(args, runtime=_SecretPathsRuntime(
                runtime.host, runtime.nodes, secret_paths={LOCAL_CONFIG: config}))
        super().__init__("Qdrant", name, args, spec, opts)
        self.collection = args.naming.collection
