"""The two networks: frontend (nginx, app; has egress) and backend (internal, data services)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_docker as docker

from components.host.containers import LABEL_PREFIX
from settings.naming import Naming


def labelled_network(name: str, *, environment: str, opts: pulumi.ResourceOptions,
                     internal: Optional[bool] = None) -> docker.Network:
    """A bridge network carrying the environment label every network has.
    `internal` stays unset unless asked for: an input that appears, even as
    False, is a change to an existing network, and networks are replaced."""
    return docker.Network(
        name, name=name, driver="bridge", internal=internal,
        labels=[docker.NetworkLabelArgs(label=f"{LABEL_PREFIX}.environment", value=environment)], opts=opts,
    )


@dataclass(frozen=True, kw_only=True)
class NetworksArgs:
    naming: Naming


class Networks(pulumi.ComponentResource):
    frontend: docker.Network
    backend: docker.Network

    def __init__(self, name: str, args: NetworksArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:network:Networks", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        env = args.naming.env
        self.frontend = labelled_network(args.naming.network("frontend"), environment=env, opts=child)
        # internal: no route off the host, so a data service cannot be reached
        # from outside nor reach out, whatever its own settings say.
        self.backend = labelled_network(args.naming.network("backend"), environment=env, opts=child, internal=True)
        self.register_outputs({"frontend": self.frontend.name, "backend": self.backend.name})
