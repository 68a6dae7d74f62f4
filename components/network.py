"""The two networks: frontend (nginx, app; has egress) and backend (internal, data services)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_docker as docker

from components.containers import LABEL_PREFIX
from settings.naming import Naming


@dataclass(frozen=True, kw_only=True)
class NetworksArgs:
    naming: Naming


class Networks(pulumi.ComponentResource):
    frontend: docker.Network
    backend: docker.Network

    def __init__(self, name: str, args: NetworksArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:network:Networks", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        label = [docker.NetworkLabelArgs(label=f"{LABEL_PREFIX}.environment", value=args.naming.env)]
        self.frontend = docker.Network(
            args.naming.network("frontend"), name=args.naming.network("frontend"),
            driver="bridge", labels=label, opts=child,
        )
        # internal: no route off the host, so a data service cannot be reached
        # from outside nor reach out, whatever its own settings say.
        self.backend = docker.Network(
            args.naming.network("backend"), name=args.naming.network("backend"),
            driver="bridge", internal=True, labels=label, opts=child,
        )
        self.register_outputs({"frontend": self.frontend.name, "backend": self.backend.name})
