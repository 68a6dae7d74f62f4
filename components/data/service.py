"""What the four data services share: a pinned image, a named data volume, and one
hardened container on the internal backend network, never published on the host.

On a swarm the container is a service of one task pinned to the data node,
where its volume and image are (the component's provider is the data node's,
components/host/runtime.py), updated stop-first: never two servers on one
data directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_docker as docker

from components.host.containers import ContainerSpec, Deployed, Healthcheck, data_volume, pulled_image
from components.host.runtime import Runtime
from components.host.images import built_image
from components.swarm.service import Placement
from settings.naming import Naming


@dataclass(frozen=True, kw_only=True)
class DataServiceArgs:
    naming: Naming
    image: str
    memory_mb: int
    backend_network: pulumi.Input[str]  # Runtime.network's form: a name, or on a swarm an id
    runtime: Runtime


@dataclass(frozen=True, kw_only=True)
class DataServiceSpec:
    service: str
    data_path: str
    healthcheck: Healthcheck
    envs: Sequence[pulumi.Input[str]] = field(default_factory=list)
    command: Optional[Sequence[str]] = None
    # Set when the image reads its environment only to initialise an empty data
    # directory: a later change of it (a rotated password) must not replace the
    # running service, and is applied by a step instead.
    env_read_at_init_only: bool = False
    # Of `file_secrets`, those read only at init (on a swarm they keep their first value).
    secrets_read_at_init_only: Sequence[str] = ()
    # Build the image from this folder (relative to the project; its Dockerfile
    # takes DataServiceArgs.image as the build arg BASE_IMAGE) instead of pulling it.
    build_context: Optional[str] = None
    # Volumes beside the data volume, and more container labels.
    volumes: Sequence[docker.ContainerVolumeArgs] = field(default_factory=list)
    labels: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # Processes and threads; None: the service's row in components/host/hardening.py.
    pids_limit: Optional[int] = None
    # Variables the image also reads as <NAME>_FILE (Runtime.deploy), readable by this uid.
    file_secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    secrets_owner: str = "0"
    secret_names_relative: bool = False
    # Swarm secrets at paths the image reads itself (Runtime.deploy mounted_secrets): a swarm only.
    mounted_secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


class DataService(pulumi.ComponentResource):
    volume: docker.Volume
    deployed: Deployed

    def __init__(self, type_name: str, name: str, args: DataServiceArgs, spec: DataServiceSpec,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(f"shia-chatbot:data:{type_name}", name, None, opts)
        naming = args.naming
        self.container_name = naming.container(spec.service)
        self.volume = data_volume(naming.volume(spec.service), environment=naming.env,
                                  service=spec.service, parent=self)
        child = pulumi.ResourceOptions(parent=self)
        if spec.build_context:
            image = built_image(f"{self.container_name}-image", repository=f"shia-chatbot-{spec.service}",
                                context=spec.build_context, build_args={"BASE_IMAGE": args.image},
                                opts=child).image_name
        else:
            image = args.runtime.image(pulled_image(f"{self.container_name}-image", args.image, child))
        # What the task runs: a step keyed on it re-runs on a new image, which on
        # a swarm is an in-place update (the service's id stays).
        self.image_ref = image
        self.deployed = args.runtime.deploy(
            ContainerSpec(
                name=self.container_name,
                image=image,
                environment=naming.env,
                service=spec.service,
                memory_mb=args.memory_mb,
                healthcheck=spec.healthcheck,
                networks=[(args.backend_network, [spec.service])],
                command=spec.command,
                envs=spec.envs,
                volumes=[docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=spec.data_path),
                         *spec.volumes],
                labels=spec.labels,
                host=args.runtime.node_host("data"),
                pids_limit=spec.pids_limit,
            ),
            Placement(role="data", replicas=1, exclusive=True),
            # Two containers must never share one data directory, and the name is
            # fixed: the old container goes before its replacement starts.
            pulumi.ResourceOptions(parent=self, delete_before_replace=True,
                                   ignore_changes=["envs"] if spec.env_read_at_init_only else None),
            file_secrets=spec.file_secrets, secrets_owner=spec.secrets_owner,
            secrets_read_at_init_only=spec.secrets_read_at_init_only, secret_names_relative=spec.secret_names_relative,
            mounted_secrets=spec.mounted_secrets,
        )
        self._extend(args)
        self.register_outputs(self._outputs())

    @property
    def container(self) -> pulumi.CustomResource:
        """The docker.Container, or on a swarm the docker.Service."""
        return self.deployed.container

    @property
    def ready(self) -> list[pulumi.Resource]:
        """Depend on these to use the service: the container, healthy."""
        return self.deployed.ready

    def _extend(self, args: DataServiceArgs) -> None:
        """Service-specific children made after the container (none by default)."""

    def _outputs(self) -> dict:
        return {"container": self.container.name, "volume": self.volume.name}
