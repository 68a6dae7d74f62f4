"""Which stack the pack is judging: its name, its environment and its config.

The engine starts the pack with PULUMI_STACK, PULUMI_PROJECT and PULUMI_CONFIG
(a JSON object of "project:key" -> string, secrets decrypted, objects
JSON-encoded) in its environment. The environment decides each rule's level
and thresholds; every other fact is read from the resources themselves, which
say what will run (the program applies its defaults inside itself, so the
stack config alone would not).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

PROJECT = "shia-chatbot"
ENVIRONMENTS = ("dev", "stage", "prod")
# A stack whose environment cannot be told is judged as prod: fail closed.
FALLBACK_ENVIRONMENT = "prod"


@dataclass(frozen=True)
class StackContext:
    stack: str
    environment: str
    config: Mapping[str, str] = field(default_factory=dict)
    project: str = PROJECT

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "StackContext":
        config = json.loads(environ.get("PULUMI_CONFIG") or "{}")
        stack = environ.get("PULUMI_STACK", "")
        return cls(stack=stack, environment=_environment(stack, config), config=config,
                   project=environ.get("PULUMI_PROJECT", PROJECT))

    @classmethod
    def for_stack(cls, stack: str, settings: Optional[Mapping[str, Any]] = None) -> "StackContext":
        """A context as the engine would build it from `settings` (keys without the project prefix)."""
        config = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in (settings or {}).items()}
        return cls(stack=stack, environment=_environment(stack, config), config=config)

    @property
    def configured_environment(self) -> Optional[str]:
        return self.config.get(f"{PROJECT}:environment")


def _environment(stack: str, config: Mapping[str, str]) -> str:
    configured = config.get(f"{PROJECT}:environment")
    if configured in ENVIRONMENTS:
        return configured
    prefix = stack.split("-", 1)[0]
    return prefix if prefix in ENVIRONMENTS else FALLBACK_ENVIRONMENT
