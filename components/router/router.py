"""Nginx, the one container that publishes ports, and its config step.

The config is not an input of the container: it lives on a volume and is
written into the running nginx by a separate step (check, then graceful
reload). So changing the upstream never replaces the container, whose
published ports could not be handed over without a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_docker as docker

from components.host.containers import ContainerSpec, Healthcheck, hardened_container, pulled_image
from components.host.docker_host import DockerHost, in_container
from components.router.nginx_config import APPLY_SCRIPT, CONF_PATH, WORKER_SHUTDOWN_TIMEOUT, RouterSpec, digest
from settings.model import TlsConfig
from settings.naming import Naming

HTTP_PORT = 80
HTTPS_PORT = 443


@dataclass(frozen=True, kw_only=True)
class RouterArgs:
    naming: Naming
    host: DockerHost
    image: str
    memory_mb: int
    spec: RouterSpec
    published_http_port: int
    published_https_port: Optional[int]
    tls: TlsConfig
    frontend_network: pulumi.Input[str]
    # The switch waits for these: the target slot's smoke check.
    switch_after: Sequence[pulumi.Resource] = ()
    # The active slot's replicas: nginx resolves upstream names only when it
    # loads its config, so a recreated replica (new address) needs a reload.
    upstream_containers: Sequence[docker.Container] = ()


class Router(pulumi.ComponentResource):
    container: docker.Container
    config_step: pulumi.CustomResource

    def __init__(self, name: str, args: RouterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:router:Router", name, None, opts)
        n = args.naming
        self.container_name = n.container("nginx")
        conf_volume = docker.Volume(n.config_volume("nginx"), name=n.config_volume("nginx"),
                                    opts=pulumi.ResourceOptions(parent=self))
        volumes = [docker.ContainerVolumeArgs(volume_name=conf_volume.name, container_path="/etc/nginx/conf.d")]
        ports = [docker.ContainerPortArgs(internal=HTTP_PORT, external=args.published_http_port)]
        if args.published_https_port:
            ports.append(docker.ContainerPortArgs(internal=HTTPS_PORT, external=args.published_https_port))
        if args.tls.enabled:
            volumes += [
                docker.ContainerVolumeArgs(host_path=args.tls.certificate_dir,
                                           container_path=args.tls.certificate_dir, read_only=True),
                docker.ContainerVolumeArgs(host_path=args.tls.webroot_dir,
                                           container_path="/var/www/certbot", read_only=True),
            ]
        image = pulled_image(f"{self.container_name}-image", args.image, pulumi.ResourceOptions(parent=self))
        self.container = hardened_container(
            ContainerSpec(
                name=self.container_name,
                image=image.name,
                environment=n.env,
                service="nginx",
                memory_mb=args.memory_mb,
                command=["nginx", "-g", f"daemon off; worker_shutdown_timeout {WORKER_SHUTDOWN_TIMEOUT};"],
                networks=[(args.frontend_network, ["nginx"])],
                ports=ports,
                volumes=volumes,
                healthcheck=Healthcheck(test=["CMD-SHELL", 'kill -0 "$(cat /var/run/nginx.pid)"']),
            ),
            pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.rendered = args.spec.render()
        self.config_step = args.host.command(
            f"{n.env}-router-config",
            create=in_container(self.container_name, APPLY_SCRIPT, stdin=True, env={"ROUTER_CONF": CONF_PATH}),
            stdin=self.rendered,
            triggers=[digest(self.rendered), self.container.id, *(c.id for c in args.upstream_containers)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.container, *args.switch_after]),
        )
        self.register_outputs({"container": self.container.name, "activeSlot": args.spec.slot,
                               "configSha256": digest(self.rendered)})
