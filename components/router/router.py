"""Nginx, the one container that publishes ports, and the two steps that drive it.

Neither the config nor the active slot is an input of the container: both live
on the config volume. `<env>-router-config` installs the rendered config
(check, graceful reload, wait until served) when the settings change;
`<env>-router-switch` writes the active slot, which nginx reads per request,
so a switch reloads nothing and replaces nothing. The container, whose
published ports could not be handed over without a gap, is replaced only when
its own inputs change (its image, ports, TLS mounts).

On a swarm nginx is a global service on the edge nodes, publishing its ports
in host mode on each (no ingress mesh: it needs IPVS). Each edge node has its
own config volume, and the two steps run once per edge node, on it, into its
task: `<env>-router-config-<node>`, `<env>-router-switch-<node>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_docker as docker

from components.host.containers import ContainerSpec, Deployed, Healthcheck, pulled_image
from components.host.docker_host import in_container
from components.host.runtime import Runtime
from components.swarm.service import Placement
from components.router.nginx_config import (
    APPLY_SCRIPT, CONF_DIR, NJS_MODULE, SLOT_FILE, STATUS_URL, SWITCH_SCRIPT, WORKER_SHUTDOWN_TIMEOUT, RouterSpec,
    digest,
)
from settings.model import TlsConfig
from settings.naming import Naming

HTTP_PORT = 80
HTTPS_PORT = 443
LOAD_NJS = f"load_module {NJS_MODULE};"
# SIGQUIT (the image's stop signal) lets workers finish, up to worker_shutdown_timeout.
STOP_TIMEOUT = 70


@dataclass(frozen=True, kw_only=True)
class RouterArgs:
    naming: Naming
    runtime: Runtime
    image: str
    memory_mb: int
    spec: RouterSpec
    # The slot to serve.
    active_slot: str
    published_http_port: int
    published_https_port: Optional[int]
    tls: TlsConfig
    frontend_network: pulumi.Input[str]
    # The switch waits for these: the target slot's smoke check.
    switch_after: Sequence[pulumi.Resource] = ()


class Router(pulumi.ComponentResource):
    deployed: Deployed
    config_steps: list[pulumi.CustomResource]  # one per edge node (one host: one)
    switch_steps: list[pulumi.CustomResource]

    def __init__(self, name: str, args: RouterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:router:Router", name, None, opts)
        n = args.naming
        self.container_name = n.container("nginx")
        runtime = args.runtime
        # The config volume, on each node nginx runs on (one host: the host).
        edges = runtime.node_hosts("edge")
        conf_volumes = [
            docker.Volume(f"{n.config_volume('nginx')}-{node}" if runtime.swarm else n.config_volume("nginx"),
                          name=n.config_volume("nginx"),
                          opts=pulumi.ResourceOptions(parent=self, provider=edge.provider if runtime.swarm else None))
            for node, edge in edges.items()]
        volumes = [docker.ContainerVolumeArgs(volume_name=conf_volumes[0].name, container_path=CONF_DIR)]
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
        self.deployed = runtime.deploy(
            ContainerSpec(
                name=self.container_name,
                image=runtime.image(image),
                environment=n.env,
                service="nginx",
                memory_mb=args.memory_mb,
                command=["nginx", "-g", f"{LOAD_NJS} daemon off; worker_shutdown_timeout {WORKER_SHUTDOWN_TIMEOUT};"],
                networks=[(args.frontend_network, ["nginx"])],
                ports=ports,
                volumes=volumes,
                healthcheck=Healthcheck(test=["CMD-SHELL", 'kill -0 "$(cat /var/run/nginx.pid)"']),
                stop_timeout=STOP_TIMEOUT,
                host=runtime.host,
            ),
            Placement(role="edge", replicas=None),
            pulumi.ResourceOptions(parent=self, delete_before_replace=True, depends_on=conf_volumes),
        )
        self.config_digest = args.spec.config_digest
        bundle = args.spec.bundle()
        self.config_steps, self.switch_steps = [], []
        for node, edge in edges.items():
            suffix = f"-{node}" if runtime.swarm else ""
            config_step = edge.command(
                f"{n.env}-router-config{suffix}",
                create=in_container(self.deployed.target, APPLY_SCRIPT, stdin=True, env={
                    "ROUTER_DIR": CONF_DIR, "NGINX_GLOBALS": LOAD_NJS, "STATUS_URL": STATUS_URL,
                    "EXPECT": args.spec.config_digest}),
                stdin=bundle,
                # Again on a new container: it starts with whatever the volume holds.
                triggers=[digest(bundle), self.deployed.container.id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=self.deployed.ready),
            )
            self.config_steps.append(config_step)
            self.switch_steps.append(edge.command(
                f"{n.env}-router-switch{suffix}",
                create=in_container(self.deployed.target, SWITCH_SCRIPT, stdin=True, env={
                    "SLOT_FILE": f"{CONF_DIR}/{SLOT_FILE}", "STATUS_URL": STATUS_URL}),
                stdin=f"{args.active_slot}\n",
                triggers=[self.deployed.container.id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[config_step, *args.switch_after]),
            ))
        self.register_outputs({"container": self.deployed.container.name, "activeSlot": args.active_slot,
                               "configSha256": self.config_digest})
