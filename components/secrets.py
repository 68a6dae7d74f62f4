"""Every secret the stack uses: generated ones and the provider keys read from config.

Generated secrets are `RandomPassword`s (their `result` is a secret in state and
in every input it reaches). Letters and digits only: they are embedded in
DATABASE_URL and REDIS_URL, where `@`, `/` or `:` would need escaping; at 32+
characters that is still over 190 bits.

Rotation: bumping `rotation.<name>` in stack config changes the keeper and so
regenerates that one secret; its consumers are replaced, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_random as random

from settings.load import PROJECT
from settings.naming import Naming
from settings.secret_names import GENERATED, PROVIDER_KEYS

@dataclass(frozen=True, kw_only=True)
class SecretsArgs:
    naming: Naming
    rotation: dict[str, int] = field(default_factory=dict)


class Secrets(pulumi.ComponentResource):
    """Generated passwords (`generated[name]`) and the provider keys that are set."""

    generated: dict[str, pulumi.Output[str]]
    provider_keys: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: SecretsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:secrets:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, additional_secret_outputs=["result"])
        self.generated = {}
        for key, length in GENERATED.items():
            password = random.RandomPassword(
                password_resource_name(args.naming, key),
                length=length,
                special=False,
                keepers={"rotation": str(args.rotation.get(key, 0))},
                opts=child,
            )
            # The engine marks `result` secret; the explicit wrap keeps it secret
            # even where an engine (or a mock) does not honour that.
            self.generated[key] = pulumi.Output.secret(password.result)

        config = pulumi.Config(PROJECT)
        self.provider_keys = {}
        for key, env_var in PROVIDER_KEYS.items():
            value = config.get_secret(key)
            if value is not None:
                self.provider_keys[env_var] = value

        # Not an app variable: only Alertmanager gets it.
        self.alert_webhook_url: Optional[pulumi.Output[str]] = config.get_secret("alertWebhookUrl")

        self.register_outputs({})

    def __getitem__(self, key: str) -> pulumi.Output[str]:
        return self.generated[key]


def secret_env(name: str, *value: pulumi.Input[str]) -> pulumi.Output[str]:
    """A container environment entry `NAME=value`, marked secret whatever its parts are."""
    return pulumi.Output.secret(pulumi.Output.concat(f"{name}=", *value))


@dataclass(frozen=True)
class SwarmEnv:
    """An environment as a Swarm service takes it: no secret in it, since one
    secret entry makes the SDK mark the service's whole `taskSpec` secret
    (docs/swarm.md). The caller makes one Swarm secret per `secrets` entry and
    adds `NAME_FILE=/run/secrets/<file>` to `plain` (docs/app-image.md).

    plain: ["NAME=value", ...], none of them secret;
    secrets: {"NAME": the value, a secret Output}."""

    plain: list[str]
    secrets: dict[str, pulumi.Output[str]]

    def __add__(self, other: SwarmEnv) -> SwarmEnv:
        """Both environments, `other`'s entries after; a name in both raises ValueError."""
        names = [e.split("=", 1)[0] for e in [*self.plain, *other.plain]] + [*self.secrets, *other.secrets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"set twice: {', '.join(twice)}")
        return SwarmEnv([*self.plain, *other.plain], {**self.secrets, **other.secrets})


@dataclass(frozen=True)
class EnvVariables:
    """A container's variables by name, the secret ones apart: one source for
    the Docker runtime's `envs` and Swarm's split.

    plain: {"NAME": value}, never secret; secret: {"NAME": value}, kept secret."""

    plain: dict[str, str]
    secret: dict[str, pulumi.Input[str]]

    def envs(self) -> list[pulumi.Input[str]]:
        """A container's `envs`: the plain "NAME=value" entries, then the secret
        ones as secret Outputs, each part sorted by name."""
        return self._plain_entries() + [secret_env(k, v) for k, v in sorted(self.secret.items())]

    def swarm(self) -> SwarmEnv:
        """The same variables split for Swarm, each part sorted by name."""
        return SwarmEnv(self._plain_entries(), {k: pulumi.Output.secret(v) for k, v in sorted(self.secret.items())})

    def _plain_entries(self) -> list[str]:
        return [f"{k}={v}" for k, v in sorted(self.plain.items())]


def ssh_private_key() -> Optional[pulumi.Output[str]]:
    """The key for ssh:// docker hosts, if set (else the SSH agent is used)."""
    return pulumi.Config(PROJECT).get_secret("sshPrivateKey")


def registry_password() -> Optional[pulumi.Output[str]]:
    """The password (or token) for `registry`, if set; settings/load.py requires both or neither."""
    return pulumi.Config(PROJECT).get_secret("registryPassword")


def password_resource_name(naming: Naming, key: str) -> str:
    """The RandomPassword behind GENERATED[key]: `secretKey` -> `<env>-secret-key`."""
    return naming.resource("".join(f"-{c.lower()}" if c.isupper() else c for c in key))
