"""Run the real __main__.py under the Pulumi SDK's mocks and keep what it registered.

Every RegisterResourceRequest is kept as sent (inputs as a protobuf Struct with
secret markers intact), so tests see exactly what the engine would, and the
offline policy gate can replay them to the policy pack.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "shia-chatbot"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
STACKS = ("dev", "stage", "prod")


class MissingConfig(Exception):
    """What the CLI refuses before running the program at all."""


def _project_declarations() -> dict[str, dict[str, Any]]:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in (project.get("config") or {}).items()}


def apply_project_config(stack: str, config: dict[str, Any]) -> dict[str, Any]:
    """As the CLI does before it starts the program: a declared key without a
    default must be set by the stack; declared defaults fill what is unset."""
    merged = dict(config)
    for key, declaration in _project_declarations().items():
        if key in merged:
            continue
        if "default" not in declaration:
            raise MissingConfig(f"Stack '{stack}' is missing configuration value '{PROJECT}:{key}'")
        merged[key] = declaration["default"]
    return merged


def stack_config(stack: str) -> dict[str, Any]:
    """The committed Pulumi.<stack>.yaml config, keys without the project prefix."""
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in data["config"].items()}


def mock_password(name: str, length: int, keepers: Any) -> str:
    """What the mock makes a RandomPassword's result: new whenever its keepers change,
    as the real provider regenerates it. Made up per run, never a fixture literal."""
    seed = f"mock:{name}:{json.dumps(keepers, sort_keys=True)}"
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, preview: bool, previous_outputs: Optional[dict[str, Any]]):
        self.preview = preview
        self.previous_outputs = previous_outputs or {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            # The stack reading its own last outputs (settings/release_guard.py).
            return args.name, {"name": args.inputs["name"], "outputs": self.previous_outputs,
                               "secretOutputNames": []}
        if args.typ == "random:index/randomPassword:RandomPassword" and not self.preview:
            state["result"] = mock_password(args.name, int(args.inputs["length"]), args.inputs.get("keepers"))
        if args.typ == "aws:iam/accessKey:AccessKey" and not self.preview:
            # The provider computes it; the job's MC_HOST_offsite embeds it.
            state["secret"] = mock_password(args.name, 40, None)
        # In preview, leaving `result` out makes it unknown, as in a first preview.
        if args.typ == "docker:index/container:Container":
            # Docker gives every created container a new id; steps keyed on ids
            # (the router's reload, smoke checks) must see a replacement.
            # An unknown input (preview) stands as its type name: its repr holds an address.
            fingerprint = hashlib.sha256(json.dumps(args.inputs, sort_keys=True,
                                                    default=lambda v: type(v).__name__).encode()).hexdigest()
            return f"{args.name}-{fingerprint[:12]}", state
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class _Recorder(MockMonitor):
    def __init__(self, mocks: _Mocks):
        super().__init__(mocks)
        self.requests: list[Any] = []
        self.ids: list[str] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        self.requests.append(request)
        self.ids.append(response.id)
        return response


@dataclass
class Registered:
    type: str
    name: str
    urn_parent: str
    inputs: dict[str, Any]  # secret markers kept; unknowns are the UNKNOWN string
    protect: bool
    retain_on_delete: bool
    provider: str
    dependencies: list[str]
    custom: bool
    request: Any = field(repr=False)
    id: str = ""  # what the monitor answered (a container's changes when it is recreated)

    def plain(self, key: str, default: Any = None) -> Any:
        """An input with secret markers removed."""
        return unwrap(self.inputs.get(key, default))


@dataclass
class Run:
    stack: str
    resources: list[Registered]
    outputs: dict[str, Any]
    secret_outputs: set[str] = field(default_factory=set)
    error: Optional[BaseException] = None

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str, type_: Optional[str] = None) -> Registered:
        matches = [r for r in self.resources if r.name == name and type_ in (None, r.type)]
        assert len(matches) == 1, f"{len(matches)} resources named {name!r}"
        return matches[0]

    def containers(self) -> dict[str, Registered]:
        return {r.plain("name"): r for r in self.of_type("docker:index/container:Container")}


def unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_MARK:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_MARK


def plaintext_strings(value: Any):
    """Every string in value that is not under a secret marker."""
    if is_secret(value):
        return
    if isinstance(value, dict):
        for v in value.values():
            yield from plaintext_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from plaintext_strings(v)
    elif isinstance(value, str):
        yield value


def _encode(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run(
    stack: str,
    config: Optional[dict[str, Any]] = None,
    *,
    preview: bool = False,
    secret_config: Optional[dict[str, str]] = None,
    plaintext_secrets: bool = False,
    previous_outputs: Optional[dict[str, Any]] = None,
) -> Run:
    """Evaluate __main__.py for `stack` with `config` (defaults to the committed file).

    secret_config: extra keys set as secrets (as `pulumi config set --secret` would);
    plaintext_secrets: set them without the secret flag instead.
    previous_outputs: the stack outputs of the last deployment (None: a new stack).
    A program error is returned in Run.error, with whatever was registered before it.
    """
    config = apply_project_config(stack, stack_config(stack) if config is None else config)
    secret_config = secret_config or {}
    mocks = _Mocks(preview, previous_outputs)
    monitor = _Recorder(mocks)
    runtime_settings.ROOT.set(None)  # a fresh Stack resource per run
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    all_config = {f"{PROJECT}:{k}": _encode(v) for k, v in {**config, **secret_config}.items()}
    secret_keys = [] if plaintext_secrets else [f"{PROJECT}:{k}" for k in secret_config]
    pulumi.runtime.set_all_config(all_config, secret_keys=secret_keys)

    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    error: Optional[BaseException] = None

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        root = runtime_settings.get_root_resource()
        exported = getattr(root, "outputs", {}) or {}
        names = list(exported)

        async def secret_names():
            return {n for n in names if isinstance(exported[n], pulumi.Output) and await exported[n].is_secret()}

        def keep(values):
            outputs.update(zip(names, values[:-1]))
            secret_outputs.update(values[-1])

        return pulumi.Output.all(*[exported[n] for n in names], asyncio.ensure_future(secret_names())).apply(
            keep, run_with_unknowns=True
        )

    try:
        program()
    except Exception as exc:  # noqa: BLE001 - the caller asserts on it
        error = exc
    return Run(stack=stack, resources=[_registered(r, i) for r, i in zip(monitor.requests, monitor.ids)], outputs=outputs,
               secret_outputs=secret_outputs, error=error)


def _registered(request: Any, id_: str) -> Registered:
    return Registered(
        type=request.type,
        name=request.name,
        urn_parent=request.parent,
        inputs=json_format.MessageToDict(request.object),
        protect=request.protect,
        retain_on_delete=request.retainOnDelete,
        provider=request.provider,
        dependencies=list(request.dependencies),
        custom=request.custom,
        request=request,
        id=id_,
    )
