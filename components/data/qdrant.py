"""Qdrant: the vector store (collection `<env>_documents`), API key required."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from components.host.containers import Healthcheck
from components.data.service import DataService, DataServiceArgs, DataServiceSpec
from components.secrets import secret_env


@dataclass(frozen=True, kw_only=True)
class QdrantArgs(DataServiceArgs):
    api_key: pulumi.Input[str]
    # Qdrant's read-only key (GET only): what the monitoring scrape uses.
    read_only_api_key: pulumi.Input[str]


class Qdrant(DataService):
    def __init__(self, name: str, args: QdrantArgs, opts: Optional[pulumi.ResourceOptions] = None):
        spec = DataServiceSpec(
            service="qdrant",
            data_path="/qdrant/storage",
            envs=[
                secret_env("QDRANT__SERVICE__API_KEY", args.api_key),
                secret_env("QDRANT__SERVICE__READ_ONLY_API_KEY", args.read_only_api_key),
                "QDRANT__TELEMETRY_DISABLED=true",
            ],
            # The image has no curl; the guide's TCP probe works with its bash.
            healthcheck=Healthcheck(test=["CMD-SHELL", "timeout 1 bash -c '</dev/tcp/127.0.0.1/6333'"]),
        )
        super().__init__("Qdrant", name, args, spec, opts)
        self.collection = args.naming.collection
