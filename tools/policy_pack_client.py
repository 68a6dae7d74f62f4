"""Start a policy pack and talk to it the way the Pulumi engine does.

The engine runs `python -u -m pulumi.policy <engine-address> .` from the pack's
directory (python from the virtualenv PulumiPolicy.yaml names) with the
stack's identity and decrypted config in the environment, reads the port the
pack prints, and calls ConfigureStack, GetAnalyzerInfo, Configure, Analyze per
resource and AnalyzeStack. Policy config is reconciled as the engine's
ReconcilePolicyPackConfig does: schema defaults, then the pack's
initialConfig, then the --policy-pack-config file, then validated.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import grpc
import yaml
from google.protobuf import empty_pb2, json_format
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

# The pack's SDK never dials the engine; the address only fills the argument.
ENGINE_ADDRESS = "127.0.0.1:0"
START_TIMEOUT_SECONDS = 60
LEVELS = {"advisory": analyzer_pb2.ADVISORY, "mandatory": analyzer_pb2.MANDATORY,
          "remediate": analyzer_pb2.REMEDIATE, "disabled": analyzer_pb2.DISABLED}
LEVEL_NAMES = {number: name for name, number in LEVELS.items()}


class PolicyPackError(RuntimeError):
    """The pack failed to start, or its policy config is invalid."""


def pack_manifest(pack_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((pack_dir / "PulumiPolicy.yaml").read_text())


def _python(pack_dir: Path) -> str:
    """The interpreter the engine's python shim would use."""
    runtime = pack_manifest(pack_dir).get("runtime") or {}
    virtualenv = (runtime.get("options") or {}).get("virtualenv") if isinstance(runtime, dict) else None
    if virtualenv and (pack_dir / virtualenv / "bin" / "python").exists():
        return str(pack_dir / virtualenv / "bin" / "python")
    return sys.executable


class PolicyPackProcess:
    """One running pack. Start it early (`start`), connect when the plan is ready."""

    def __init__(self, pack_dir: Path, *, project: str, stack: str, config: Mapping[str, str],
                 dry_run: bool = True, organization: str = "organization"):
        self.pack_dir = pack_dir
        self.environ = {
            **os.environ,
            "PULUMI_PROJECT": project, "PULUMI_STACK": stack, "PULUMI_ORGANIZATION": organization,
            "PULUMI_DRY_RUN": "true" if dry_run else "false", "PULUMI_CONFIG": json.dumps(dict(config)),
        }
        self.version = str(pack_manifest(pack_dir).get("version", ""))
        self._process: Optional[subprocess.Popen] = None
        self._stderr = tempfile.TemporaryFile()
        self._channel: Optional[grpc.Channel] = None
        self.stub: Optional[analyzer_pb2_grpc.AnalyzerStub] = None

    def start(self) -> "PolicyPackProcess":
        self._process = subprocess.Popen(
            [_python(self.pack_dir), "-u", "-m", "pulumi.policy", ENGINE_ADDRESS, "."],
            cwd=self.pack_dir, env=self.environ, stdout=subprocess.PIPE, stderr=self._stderr,
        )
        return self

    def connect(self) -> analyzer_pb2_grpc.AnalyzerStub:
        if self.stub is None:
            port = self._read_port()
            self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            self.stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        return self.stub

    def _read_port(self) -> int:
        ready, _, _ = select.select([self._process.stdout], [], [], START_TIMEOUT_SECONDS)
        line = self._process.stdout.readline().decode().strip() if ready else ""
        if not line.isdigit():
            self._stderr.seek(0)
            raise PolicyPackError(f"the policy pack did not start:\n{self._stderr.read().decode()}")
        return int(line)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        if self._process is not None:
            self._process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> "PolicyPackProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # The engine's calls, in its order.

    def configure_stack(self, stack: str, project: str, config: Mapping[str, str]) -> None:
        request = analyzer_pb2.AnalyzerStackConfigureRequest(stack=stack, project=project, dry_run=True)
        request.config.update(dict(config))
        self.connect().ConfigureStack(request)

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        return self.connect().GetAnalyzerInfo(empty_pb2.Empty())

    def configure(self, config: Mapping[str, "PolicySettings"]) -> None:
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, settings in config.items():
            entry = request.policyConfig[name]
            entry.enforcementLevel = LEVELS[settings.level]
            entry.properties.update(settings.properties)
        self.connect().Configure(request)

    def analyze(self, request: analyzer_pb2.AnalyzeRequest) -> analyzer_pb2.AnalyzeResponse:
        return self.connect().Analyze(request)

    def analyze_stack(self, resources: list[analyzer_pb2.AnalyzerResource]) -> analyzer_pb2.AnalyzeResponse:
        return self.connect().AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources))


@dataclass
class PolicySettings:
    level: str
    properties: dict[str, Any]


def reconcile(info: analyzer_pb2.AnalyzerInfo,
              given: Optional[Mapping[str, Any]] = None) -> dict[str, PolicySettings]:
    """The config the engine sends in Configure: every policy's level and properties."""
    result = {}
    for policy in info.policies:
        schema = json_format.MessageToDict(policy.configSchema.properties)
        defaults = {key: prop["default"] for key, prop in schema.items() if "default" in prop}
        result[policy.name] = PolicySettings(LEVEL_NAMES[policy.enforcementLevel], defaults)
    initial = {name: {**json_format.MessageToDict(c.properties),
                      **({"enforcementLevel": LEVEL_NAMES[c.enforcementLevel]} if c.enforcementLevel else {})}
               for name, c in info.initialConfig.items()}
    for layer in (initial, parse_policy_config(given or {})):
        _apply(result, layer)
    errors = [f"{policy.name}: {error}" for policy in info.policies
              for error in schema_errors(_object_schema(policy), result[policy.name].properties)]
    if errors:
        raise PolicyPackError("invalid policy pack config:\n  " + "\n  ".join(errors))
    return result


def unknown_policies(info: analyzer_pb2.AnalyzerInfo, given: Mapping[str, Any]) -> list[str]:
    """Names in a policy config document that are no policy of the pack (typos the engine ignores)."""
    known = {policy.name for policy in info.policies} | {"all"}
    return sorted(set(given) - known)


def parse_policy_config(given: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A --policy-pack-config document: policy -> level string, or object with enforcementLevel."""
    parsed = {}
    for name, value in given.items():
        entry = {"enforcementLevel": value} if isinstance(value, str) else value
        if not isinstance(entry, dict):
            raise PolicyPackError(f"parsing {name!r}: {value!r} must be a string or an object")
        level = entry.get("enforcementLevel")
        if level is not None and level not in LEVELS:
            raise PolicyPackError(f"parsing enforcement level for {name!r}: {level!r} is not a valid level")
        parsed[name] = dict(entry)
    return parsed


def _apply(result: dict[str, PolicySettings], layer: Mapping[str, Mapping[str, Any]]) -> None:
    everything = layer.get("all", {}).get("enforcementLevel")
    if everything:
        for settings in result.values():
            settings.level = everything
    for name, entry in layer.items():
        settings = result.get(name)
        if settings is None:  # "all", or a name the pack lacks (the engine ignores it too)
            continue
        settings.level = entry.get("enforcementLevel") or settings.level
        settings.properties.update({k: v for k, v in entry.items() if k != "enforcementLevel"})


def _object_schema(policy: analyzer_pb2.PolicyInfo) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object",
                              "properties": json_format.MessageToDict(policy.configSchema.properties)}
    if policy.configSchema.required:
        schema["required"] = list(policy.configSchema.required)
    return schema


# The JSON Schema keywords the pack's schemas use. Any other keyword is refused
# rather than silently ignored, so this checker cannot fall behind the pack.
_KEYWORDS = {"type", "properties", "required", "items", "minimum", "maximum", "minItems", "enum",
             "description", "default"}


def _has_type(value: Any, kind: str) -> bool:
    if kind == "boolean" or isinstance(value, bool):
        return kind == "boolean" and isinstance(value, bool)
    if kind == "integer":  # protobuf numbers arrive as floats
        return isinstance(value, int) or isinstance(value, float) and value.is_integer()
    if kind == "number":
        return isinstance(value, (int, float))
    return isinstance(value, {"string": str, "array": list, "object": dict}[kind])


def schema_errors(schema: Mapping[str, Any], value: Any, path: str = "(root)") -> list[str]:
    unsupported = set(schema) - _KEYWORDS
    if unsupported:
        raise PolicyPackError(f"{path}: schema keywords {sorted(unsupported)} are not supported by the gate")
    kind = schema.get("type")
    if kind is not None and not _has_type(value, kind):
        return [f"{path}: invalid type, expected {kind}, given {type(value).__name__}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: must be one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: must be greater than or equal to {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: must be less than or equal to {schema['maximum']}")
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{path}: needs at least {schema['minItems']} items")
    for index, item in enumerate(value if "items" in schema else []):
        errors += schema_errors(schema["items"], item, f"{path}.{index}")
    for key in schema.get("required", []):
        if key not in value:
            errors.append(f"{path}: {key} is required")
    for key, sub in schema.get("properties", {}).items():
        if isinstance(value, dict) and key in value:
            errors += schema_errors(sub, value[key], key if path == "(root)" else f"{path}.{key}")
    return errors
