"""Qdrant: the vector store (collection `<env>_documents`), API key required.

Qdrant reads its keys from its environment (QDRANT__SERVICE__API_KEY,
QDRANT__SERVICE__READ_ONLY_API_KEY) or from its configuration files, never from
a `<VAR>_FILE`. On one host they are secret environment entries. On a swarm an
environment entry would make the SDK hide the service's whole task spec and
show the keys to `docker service inspect` (docs/swarm.md), so there the keys
are a Swarm secret mounted as Qdrant's own `config/local.yaml`, and the
environment holds none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import pulumi

from components.host.containers import Healthcheck

from components.data.service import DataService, DataServiceArgs, DataServiceSpec
from components.secrets import secret_env

API_KEY_ENV = "QDRANT__SERVICE__API_KEY"
READ_ONLY_API_KEY_ENV = "QDRANT__SERVICE__READ_ONLY_API_KEY"
# Qdrant merges, later over earlier: its built-in config/config.yaml, then
# config/config, config/<RUN_MODE> (the image sets `production`) and
# config/local (any of config-rs's extensions: .yaml), each relative to its
# working directory /qdrant and optional, then QDRANT__* from the environment
# (qdrant/qdrant v1.12.4, src/settings.rs, Settings::new; unchanged in 1.19).
# config/local.yaml is in no image: a file mounted there adds to the image's
# files without replacing them.
LOCAL_CONFIG = "/qdrant/config/local.yaml"


def local_config(api_key: str, read_only_api_key: str) -> str:
    """config/local.yaml with the keys (a JSON string is a YAML scalar, quoted whatever it holds)."""
    return (f"service:\n  api_key: {json.dumps(api_key)}\n"
            f"  read_only_api_key: {json.dumps(read_only_api_key)}\n")


@dataclass(frozen=True, kw_only=True)
class QdrantArgs(DataServiceArgs):
    api_key: pulumi.Input[str]
    # Qdrant's read-only key (GET only): what the monitoring scrape uses.
    read_only_api_key: pulumi.Input[str]


class Qdrant(DataService):
    def __init__(self, name: str, args: QdrantArgs, opts: Optional[pulumi.ResourceOptions] = None):
        swarm = args.runtime.swarm
        keys = [] if swarm else [secret_env(API_KEY_ENV, args.api_key),
                                 secret_env(READ_ONLY_API_KEY_ENV, args.read_only_api_key)]
        spec = DataServiceSpec(
            service="qdrant",
            data_path="/qdrant/storage",
            envs=[*keys, "QDRANT__TELEMETRY_DISABLED=true"],
            # The image has no curl; the guide's TCP probe works with its bash.
            healthcheck=Healthcheck(test=["CMD-SHELL", "timeout 1 bash -c '</dev/tcp/127.0.0.1/6333'"]),
            # Read by Qdrant as root (the image's user), mode 0400.
            mounted_secrets={LOCAL_CONFIG: pulumi.Output.secret(pulumi.Output.all(
                args.api_key, args.read_only_api_key).apply(lambda k: local_config(k[0], k[1])))} if swarm else {},
        )
        super().__init__("Qdrant", name, args, spec, opts)
        self.collection = args.naming.collection
