"""The stack's Docker host: the one docker provider, and how commands reach the host.

A `unix://` host is this machine: steps run as local commands with DOCKER_HOST
set. An `ssh://` host is remote: steps run over SSH on that host, where the
docker CLI talks to its own daemon. Secrets never travel in a command line:
a step that needs one reads it from stdin.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import pulumi
import pulumi_docker as docker
from pulumi_command import local, remote

from components.secrets import registry_password, ssh_private_key
from settings.load import ssh_parts
from settings.model import RegistryConfig


_COMPONENTS = Path(__file__).resolve().parents[1]


class ShellWord(str):
    """A parameter the shell expands when the step runs (a command
    substitution), written as is rather than quoted."""


def host_script(path: str, **params: object) -> str:
    """A script from a component's scripts/ folder (`concern/scripts/name`, or a name in
    host/scripts), with its parameters set as shell variables above its text
    (quoted, except a ShellWord)."""
    file = _COMPONENTS / path if "/" in path else _COMPONENTS / "host" / "scripts" / path
    header = "".join(f"{key}={value if isinstance(value, ShellWord) else shlex.quote(str(value))}\n"
                     for key, value in params.items())
    return header + file.read_text()


def in_container(container: str, script: str, *, stdin: bool = False, env: Optional[dict[str, str]] = None) -> str:
    """The host command that runs `script` with sh inside a running container.

    stdin: pass the step's stdin through (config files, a secret); env: plain
    variables for the script (never secrets: they would be on the command line).
    """
    flags = (["-i"] if stdin else []) + [f"-e {k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    return " ".join(["docker exec", *flags, container, "sh -c", shlex.quote(script)])


@dataclass(frozen=True, kw_only=True)
class DockerHostArgs:
    docker_host: str
    # Public key of an ssh:// host; the SSH steps refuse any other host.
    host_key: Optional[str] = None
    # A private registry the provider logs in to for its pulls (password: the secret registryPassword).
    registry: Optional[RegistryConfig] = None


class DockerHost(pulumi.ComponentResource):
    provider: docker.Provider

    def __init__(self, name: str, args: DockerHostArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:host:DockerHost", name, None, opts)
        self.docker_host = args.docker_host
        self.is_remote = args.docker_host.startswith("ssh://")
        self.host_key = args.host_key
        registry_auth = None
        if args.registry is not None:
            registry_auth = [docker.ProviderRegistryAuthArgs(
                address=args.registry.server, username=args.registry.username, password=registry_password())]
        self.provider = docker.Provider(
            name,
            host=args.docker_host,
            # Refuse unknown host keys rather than trusting on first use.
            ssh_opts=["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"] if self.is_remote else None,
            registry_auth=registry_auth,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"host": args.docker_host})

    def command(
        self,
        name: str,
        *,
        create: pulumi.Input[str],
        update: Optional[pulumi.Input[str]] = None,
        stdin: Optional[pulumi.Input[str]] = None,
        triggers: Optional[Sequence[Any]] = None,
        opts: pulumi.ResourceOptions,
    ) -> pulumi.CustomResource:
        """A step run on the Docker host; `opts` must carry the owning component as parent.

        pulumi-command runs `create` again when `triggers` change (a replacement),
        and on any other change of its inputs (`create`, `stdin`, the connection)
        runs `update`, or `create` again when there is no `update`.
        """
        if self.is_remote:
            parts = ssh_parts(self.docker_host)
            return remote.Command(
                name,
                connection=remote.ConnectionArgs(
                    host=parts["host"], user=parts["user"], port=parts["port"],
                    host_key=self.host_key, private_key=ssh_private_key(),
                ),
                create=create,
                update=update,
                stdin=stdin,
                triggers=list(triggers) if triggers else None,
                opts=opts,
            )
        return local.Command(
            name,
            create=create,
            update=update,
            stdin=stdin,
            environment={"DOCKER_HOST": self.docker_host},
            interpreter=["/bin/sh", "-c"],
            triggers=list(triggers) if triggers else None,
            opts=opts,
        )
