"""The two networks: frontend (nginx, app; has egress) and backend (internal, data services).

On one host they are bridge networks; on a swarm (runtime `swarm`) overlay
networks spanning the nodes, attachable so the one-off steps (migrations,
smoke checks) can join them with `docker run --network`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_docker as docker

from components.host.containers import LABEL_PREFIX
from settings.naming import Naming


def labelled_network(name: str, *, environment: str, opts: pulumi.ResourceOptions,
                     internal: Optional[bool] = None, overlay: bool = False) -> docker.Network:
    """A bridge (or, `overlay`, an attachable overlay) network carrying the
    environment label every network has. `internal` and `attachable` stay
    unset unless asked for: an input that appears, even as False, is a change
    to an existing network, and networks are replaced."""
    return docker.Network(
        name, name=name, driver="overlay" if overlay else "bridge", internal=internal,
        attachable=True if overlay else None,
        labels=[docker.NetworkLabelArgs(label=f"{LABEL_PREFIX}.environment", value=environment)], opts=opts,
    )


@dataclass(frozen=True, kw_only=True)
class NetworksArgs:
    naming: Naming
    overlay: bool = False  # runtime swarm


class Networks(pulumi.ComponentResource):
    frontend: docker.Network
    backend: docker.Network

    def __init__(self, name: str, args: NetworksArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:network:Networks", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        env = args.naming.env
        self.frontend = labelled_network(args.naming.network("frontend"), environment=env, opts=child,
                                         overlay=args.overlay)
        # internal: no route off the host, so a data service cannot be reached
        # from outside nor reach out, whatever its own settings say.
        self.backend = labelled_network(args.naming.network("backend"), environment=env, opts=child, internal=True,
                                        overlay=args.overlay)
        # How a service names them: by id (the provider reads a service's
        # networks back as ids: a name would replace it on every `up`).
        self.frontend_id, self.backend_id = self.frontend.id, self.backend.id
        self.register_outputs({"frontend": self.frontend.name, "backend": self.backend.name})
