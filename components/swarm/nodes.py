"""The swarm's nodes as the stack describes them: their role labels.

The swarm itself is a prerequisite (docs/swarm.md): the program neither inits
nor joins. It owns what follows from `nodes`: each node's labels
`org.shia-chatbot.role.<role>=true` and `org.shia-chatbot.node=<hostname>`,
which the services' placement reads (`placement_constraint`, `spread`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi

from components.host.docker_host import DockerHost, DockerHostArgs, host_script
from settings.model import NodeConfig, NodeRole, RegistryConfig

LABEL_PREFIX = "org.shia-chatbot"
NODE_LABEL = f"{LABEL_PREFIX}.node"


def role_label(role: NodeRole) -> str:
    """The node label that marks `role` ("org.shia-chatbot.role.app")."""
    return f"{LABEL_PREFIX}.role.{role}"


def placement_constraint(role: NodeRole) -> str:
    """The service placement constraint for nodes with `role`."""
    return f"node.labels.{role_label(role)}==true"


def spread() -> str:
    """The placement preference that spreads a service's tasks over nodes
    (Swarm spreads only over label values, not hostnames)."""
    return f"node.labels.{NODE_LABEL}"


def nodes_text(nodes: Mapping[str, NodeConfig]) -> str:
    """One line per node, "<hostname> <role>,<role>", sorted: the step's input."""
    return "\n".join(f"{name} {','.join(sorted(node.roles))}" for name, node in sorted(nodes.items()))


@dataclass(frozen=True, kw_only=True)
class SwarmNodesArgs:
    nodes: Mapping[str, NodeConfig]
    manager: DockerHost  # where the step runs: the provider's host, a manager
    registry: Optional[RegistryConfig] = None


class SwarmNodes(pulumi.ComponentResource):
    """The nodes of the stack's swarm.

    hosts: a DockerHost per node (`<name>-host`), for what is local to a node
    (a data volume, a built image, nginx's config) and the steps that reach a
    task on it. labels_step (`<name>-labels`): re-runs when a node or a role
    changes; fails the `up`, before any service, if a node is missing, not
    ready, or a manager/worker other than its roles say."""

    def __init__(self, name: str, args: SwarmNodesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:swarm:SwarmNodes", name, None, opts)
        self.roles = {node: tuple(sorted(config.roles)) for node, config in args.nodes.items()}
        self.hosts = {
            node: DockerHost(f"{name}-{node}-host", DockerHostArgs(docker_host=config.docker_host,
                                                                  host_key=config.host_key, registry=args.registry),
                             pulumi.ResourceOptions(parent=self))
            for node, config in sorted(args.nodes.items())}
        self.labels_step = args.manager.command(
            f"{name}-labels",
            create=host_script("swarm/scripts/node-labels.sh", NODES=nodes_text(args.nodes)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"nodes": sorted(args.nodes)})

    def with_role(self, role: NodeRole) -> list[str]:
        """The nodes that have `role`, by name."""
        return [node for node, roles in sorted(self.roles.items()) if role in roles]

    @property
    def data_host(self) -> DockerHost:
        """The data node's host (exactly one: settings/load.py)."""
        return self.hosts[self.with_role("data")[0]]
