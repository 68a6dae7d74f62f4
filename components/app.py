"""One blue/green slot of the app: `replicas` uvicorn containers on both networks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_docker as docker

from components.containers import ContainerSpec, Healthcheck, hardened_container, pulled_image
from settings.naming import APP_PORT, Naming


@dataclass(frozen=True, kw_only=True)
class AppSlotArgs:
    naming: Naming
    slot: str
    image: str
    replicas: int
    uvicorn_workers: int
    memory_mb: int
    envs: Sequence[pulumi.Input[str]]
    frontend_network: pulumi.Input[str]
    backend_network: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = ()


class AppSlot(pulumi.ComponentResource):
    image: docker.RemoteImage
    containers: list[docker.Container]

    def __init__(self, name: str, args: AppSlotArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:app:AppSlot", name, None, opts)
        n = args.naming
        self.slot = args.slot
        self.image_ref = args.image
        self.image = pulled_image(f"{n.env}-app-{args.slot}-image", args.image, pulumi.ResourceOptions(parent=self))
        self.container_names = [n.app_container(args.slot, i) for i in range(1, args.replicas + 1)]
        self.containers = []
        for index, cname in enumerate(self.container_names, start=1):
            aliases = [f"app-{args.slot}-{index}", f"app-{args.slot}"]
            self.containers.append(hardened_container(
                ContainerSpec(
                    name=cname,
                    image=self.image.name,
                    environment=n.env,
                    service="app",
                    slot=args.slot,
                    memory_mb=args.memory_mb,
                    command=["uvicorn", "src.app.main:app", "--workers", str(args.uvicorn_workers),
                             "--host", "0.0.0.0", "--port", str(APP_PORT)],
                    envs=args.envs,
                    networks=[(args.frontend_network, aliases), (args.backend_network, aliases)],
                    healthcheck=Healthcheck(
                        test=["CMD", "curl", "-f", f"http://localhost:{APP_PORT}/health"],
                        interval="30s", timeout="10s", retries=3, start_period="40s",
                    ),
                ),
                # A replica keeps its name across image changes; only the idle slot
                # is ever released to, so removing it first costs no traffic.
                pulumi.ResourceOptions(parent=self, delete_before_replace=True,
                                       depends_on=list(args.depends_on)),
            ))
        self.register_outputs({"containers": self.container_names, "image": args.image})

    def upstream_servers(self) -> list[str]:
        """host:port of every replica, as nginx reaches them on the frontend network."""
        return [f"{name}:{APP_PORT}" for name in self.container_names]
