"""Swarm secrets: a generated secret as a file under /run/secrets in a service.

A Swarm secret is immutable and cannot be removed while a service uses it, so
a new value is a new secret, made before the old one goes:
- its name carries a digest of its content (`<env>-postgres-password-<16 hex>`),
  so the new one never clashes with the old;
- `delete_before_replace=False`: with an explicit name the provider bridge
  would delete first (pulumi-terraform-bridge nameRequiresDeleteBeforeReplace),
  and that delete fails while the service still mounts the secret;
- the service's mount names the new secret's id, an in-place rolling update,
  after which the engine deletes the old secret at the end of `pulumi up`.
The digest is of a generated, high-entropy value: it tells nothing about it,
and it is shown in plain text so `pulumi preview` names the secret.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_docker as docker

SECRETS_DIR = "/run/secrets"
DIGEST_CHARS = 16


def content_name(prefix: str, value: str) -> str:
    """`prefix` and the first DIGEST_CHARS hex of the value's SHA-256."""
    return f"{prefix}-{hashlib.sha256(value.encode()).hexdigest()[:DIGEST_CHARS]}"


@dataclass(frozen=True)
class SecretFile:
    """A Swarm secret and where a service reads it."""

    secret: docker.Secret
    file_name: str  # under SECRETS_DIR, or an absolute path (Docker 20.10 mounts a secret anywhere)

    @property
    def path(self) -> str:
        return self.file_name if self.file_name.startswith("/") else f"{SECRETS_DIR}/{self.file_name}"

    def mount(self, uid: Optional[str] = "0") -> docker.ServiceTaskSpecContainerSpecSecretArgs:
        """The service's mount: owned by `uid` and readable by it only (mode
        0400), or with uid None owned by root and readable by whichever user
        the image runs as (0444: its processes could read their environment too)."""
        return docker.ServiceTaskSpecContainerSpecSecretArgs(
            secret_id=self.secret.id, secret_name=self.secret.name, file_name=self.path,
            file_uid=uid or "0", file_gid=uid or "0", file_mode=0o400 if uid is not None else 0o444)


def swarm_secret(prefix: str, file_name: str, value: pulumi.Input[str], opts: pulumi.ResourceOptions, *,
                 read_at_init_only: bool = False) -> SecretFile:
    """The Swarm secret `<prefix>-<digest>` holding `value` (kept secret in the state).

    read_at_init_only: the image reads it only to initialise an empty data
    directory (PostgreSQL's superuser password), and a step sets a new value in
    the running service: the secret keeps its first value, so a rotation
    neither restarts the service nor deletes a secret it still mounts."""
    secret_value = pulumi.Output.secret(value)
    name = pulumi.Output.unsecret(secret_value.apply(lambda v: content_name(prefix, v)))
    secret = docker.Secret(
        prefix,
        name=name,
        data=secret_value.apply(lambda v: base64.b64encode(v.encode()).decode()),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            delete_before_replace=False, ignore_changes=["name", "data"] if read_at_init_only else None)),
    )
    return SecretFile(secret, file_name)
