"""Where the stack's containers run: the stack's one Docker host (runtime
`docker`), or a Docker Swarm of `nodes` (runtime `swarm`, docs/swarm.md).

Components describe a container once (a ContainerSpec, and where it belongs:
a Placement) and call `Runtime.deploy`; the runtime makes it a hardened
container on the host, or a Swarm service placed by the nodes' role labels.
What reaches a running container afterwards (a step that `docker exec`s into
it) asks the Deployed it got back where to run (`host`) and what to name
(`target`): on a swarm, the healthy task of the service on that node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Mapping, Optional

import pulumi

from components.host.containers import WAIT_TIMEOUT_SECONDS, ContainerSpec, Deployed, hardened_container
from components.host.docker_host import DockerHost, ShellWord
from components.swarm.nodes import SwarmNodes
from components.swarm.secrets import swarm_secret
from components.swarm.service import Placement, swarm_service
from components.secrets import secret_env
from settings.model import NodeRole


def task_of(service: str, wait_seconds: int = WAIT_TIMEOUT_SECONDS) -> ShellWord:
    """A shell word naming the healthy task container of the Swarm service
    `service` on the host the command runs on, waiting up to `wait_seconds`
    for one (a global service's create returns before its tasks run). A node
    with none names a container that does not exist, so `docker exec` fails
    saying so."""
    find = f"docker ps -q --filter label=com.docker.swarm.service.name={service} --filter health=healthy | head -n 1"
    return ShellWord(f'"$(waited=0; until task=$({find}) && [ -n "$task" ] || [ $waited -ge {wait_seconds} ]; '
                     f'do sleep 1; waited=$((waited + 1)); done; echo "${{task:-no-healthy-task-of-{service}-on-this-node}}")"')


def secret_file_name(variable: str) -> str:
    """Where a variable's Swarm secret is mounted, under /run/secrets ("POSTGRES_PASSWORD" -> "postgres-password")."""
    return variable.lower().replace("_", "-")


@dataclass(frozen=True)
class Runtime:
    """host: the stack's `dockerHost` (on a swarm, a manager's), whose provider
    makes every container or service; nodes: the swarm's, or None on one host."""

    host: DockerHost
    nodes: Optional[SwarmNodes] = None

    @property
    def swarm(self) -> bool:
        return self.nodes is not None

    def node_host(self, role: NodeRole) -> DockerHost:
        """Where what is local to the one node of `role` is made and reached:
        the data node's volumes, images and steps; on one host, the host.
        Raises ValueError for a role several nodes have (use `node_hosts`)."""
        if self.nodes is None:
            return self.host
        nodes = self.nodes.with_role(role)
        if len(nodes) != 1:
            raise ValueError(f"{len(nodes)} nodes have the role {role}; node_host needs exactly one")
        return self.nodes.hosts[nodes[0]]

    def node_hosts(self, role: Optional[NodeRole]) -> dict[str, DockerHost]:
        """Node name -> host for every node of `role`, or every node for None
        (on one host: {"host": the host})."""
        if self.nodes is None:
            return {"host": self.host}
        names = self.nodes.with_role(role) if role else sorted(self.nodes.hosts)
        return {node: self.nodes.hosts[node] for node in names}

    def image(self, pulled) -> pulumi.Output[str]:
        """How a container or service names a pulled image (a docker.RemoteImage).
        A service by its digest where the registry gave one: Swarm's create pins
        a tag to `tag@sha256:…` and the provider reads that back with no diff
        suppression (docs/swarm-provider-facts.md), so a bare tag would plan a
        change, a rolling restart, on every `up`. A local image has no digest."""
        if not self.swarm:
            return pulled.name
        return pulumi.Output.all(pulled.name, pulled.repo_digest).apply(lambda v: v[1] or v[0])

    def network(self, network) -> pulumi.Output[str]:
        """How a container or service names `network` (a docker.Network): by
        name on one host, by id on a swarm (the provider reads a service's
        networks back as ids: a name would replace it on every `up`)."""
        return network.id if self.swarm else network.name

    def deploy(self, spec: ContainerSpec, placement: Placement, opts: pulumi.ResourceOptions, *,
               file_secrets: Optional[Mapping[str, pulumi.Input[str]]] = None, secrets_owner: Optional[str] = "0",
               secrets_read_at_init_only: Collection[str] = (), secret_names_relative: bool = False,
               mounted_secrets: Optional[Mapping[str, pulumi.Input[str]]] = None) -> Deployed:
        """`spec` as a hardened container on the host, or as a Swarm service
        placed by `placement` and made through the manager's provider.

        file_secrets: variable -> secret value, for variables the image also
        reads as `<VARIABLE>_FILE`. On one host they are environment entries;
        on a swarm each is a Swarm secret mounted at /run/secrets/<file>, owned
        by the uid `secrets_owner` and readable by it only (None: by the
        image's user, SecretFile.mount), and the service gets
        `<VARIABLE>_FILE` instead, so its task spec stays readable in a preview
        (one secret entry would make the SDK hide the whole of it).
        secrets_read_at_init_only: the variables among `file_secrets` the image
        reads only to initialise (components/swarm/secrets.py).
        secret_names_relative: `<VARIABLE>_FILE` is the file's name under
        /run/secrets, for images that read it so (MinIO's `readFromSecret`).
        mounted_secrets: absolute path -> content, Swarm secrets mounted where
        the image reads a file of its own (a config file holding a key); a
        swarm only (ValueError on one host, where the component passes env)."""
        file_secrets = dict(file_secrets or {})
        mounted_secrets = dict(mounted_secrets or {})
        if self.nodes is None:
            if mounted_secrets:
                raise ValueError(f"{spec.name}: mounted_secrets need a swarm")
            with_secrets = ContainerSpec(**{**spec.__dict__, "envs": [
                *spec.envs, *(secret_env(k, v) for k, v in sorted(file_secrets.items()))]})
            return hardened_container(with_secrets, opts)
        on_manager = pulumi.ResourceOptions(parent=opts.parent, provider=self.host.provider)
        mounts, envs = [], list(spec.envs)
        for variable, value in sorted(file_secrets.items()):
            file = swarm_secret(f"{spec.name}-{secret_file_name(variable)}", secret_file_name(variable), value,
                                on_manager, read_at_init_only=variable in secrets_read_at_init_only)
            mounts.append(file.mount(secrets_owner))
            envs.append(f"{variable}_FILE={file.file_name if secret_names_relative else file.path}")
        for path, value in sorted(mounted_secrets.items()):
            file = swarm_secret(f"{spec.name}-{secret_file_name(path.strip('/').replace('/', '-').replace('.', '-'))}",
                                path, value, on_manager)
            mounts.append(file.mount(secrets_owner))
        service = swarm_service(
            ContainerSpec(**{**spec.__dict__, "envs": envs}), placement, spec.networks,
            # Placed by the nodes' labels: made once they are set.
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                provider=self.host.provider, depends_on=[self.nodes.labels_step])),
            secrets=mounts)
        return Deployed(service, service, host=self._exec_host(placement), target=task_of(spec.name))

    def _exec_host(self, placement: Placement) -> DockerHost:
        """Where a step reaches the service's task: the node of a single-node
        role, else the manager (whose own task a global service has when the
        manager has the role; per-node steps use `node_hosts`)."""
        nodes = self.nodes.with_role(placement.role) if placement.role else list(self.nodes.hosts)
        return self.nodes.hosts[nodes[0]] if len(nodes) == 1 else self.host
