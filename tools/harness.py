"""Run the real __main__.py under the Pulumi SDK's mocks and keep what it registered.

The stack's config comes from Pulumi.<stack>.yaml read as the CLI reads it
(tools/stack_file.py); an encrypted value is set and secret, its value unknown.

Every RegisterResourceRequest is kept as sent (inputs as a protobuf Struct with
secret markers intact), so tests see exactly what the engine would, and the
offline policy gate can replay them to the policy pack.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional
from unittest import mock

import pulumi
from google.protobuf import json_format
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor

import stack_file
from settings.secret_names import SECRET_KEYS
from stack_file import StackFileError, apply_project_config

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "shia-chatbot"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = rpc.UNKNOWN
STACKS = ("dev", "stage", "prod")


def stack_inputs(stack: str) -> stack_file.StackFile:
    """Pulumi.<stack>.yaml as the CLI reads it, checked for what an offline run can use:
    an encrypted value is taken as set, secret and unknown, which only the program's
    secrets may be (it needs every other value to plan). Raises StackFileError."""
    read = stack_file.read_stack(stack, ROOT)
    secrets = {f"{PROJECT}:{key}" for key in SECRET_KEYS}
    needed = sorted(k for k in read.secure if k.startswith(f"{PROJECT}:") and k not in secrets)
    if needed:
        raise StackFileError(
            f"{read.where(needed[0])}: {needed[0]} is encrypted (secure:), which the offline tools cannot decrypt; "
            f"only the program's secrets ({', '.join(SECRET_KEYS)}) may be, the others are needed to plan")
    return read


def stack_config(stack: str) -> dict[str, Any]:
    """The project's plain keys of Pulumi.<stack>.yaml, names without the project prefix."""
    return stack_inputs(stack).config


def mock_password(name: str, length: int, keepers: Any) -> str:
    """What the mock makes a RandomPassword's result: new whenever its keepers change,
    as the real provider regenerates it. Made up per run, never a fixture literal."""
    seed = f"mock:{name}:{json.dumps(keepers, sort_keys=True)}"
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, preview: bool, previous_outputs: Optional[dict[str, Any]], failing: frozenset[str]):
        self.preview = preview
        self.previous_outputs = previous_outputs or {}
        self.failing = failing

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.name in self.failing:
            raise RuntimeError(f"{args.name}: {ASKED_FAILURE}")
        state = dict(args.inputs)
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
        if args.token == "pulumi:pulumi:readStackOutputs":
            # The stack reading its own last outputs (settings/release_guard.py).
            return {"name": args.args["name"], "outputs": self.previous_outputs, "secretOutputNames": []}
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


def _unknown_secret() -> pulumi.Output:
    """An Output with no known value, marked secret: what the SDK makes of an unknown secret property."""
    async def known() -> bool:
        return False

    async def secret() -> bool:
        return True

    async def nothing() -> None:
        return None

    return pulumi.Output(set(), nothing(), known(), secret())


@contextlib.contextmanager
def _undecrypted(keys: frozenset[str]) -> Iterator[None]:
    """Config's secret getters answer an unknown secret for `keys`: what a preview
    would show of a secret whose value cannot be known. (The engine decrypts every
    value before the program starts; offline there is no key to decrypt with.)"""
    getters = [name for name in vars(pulumi.Config) if name.startswith(("get_secret", "require_secret"))]

    def wrap(original):
        def getter(self: pulumi.Config, key: str, *args: Any, **kwargs: Any):
            return _unknown_secret() if self.full_key(key) in keys else original(self, key, *args, **kwargs)
        return getter

    with contextlib.ExitStack() as patches:
        for name in getters if keys else []:
            patches.enter_context(mock.patch.object(pulumi.Config, name, wrap(getattr(pulumi.Config, name))))
        yield


def run(
    stack: str,
    config: Optional[dict[str, Any]] = None,
    *,
    preview: bool = False,
    secret_config: Optional[dict[str, str]] = None,
    plaintext_secrets: bool = False,
    previous_outputs: Optional[dict[str, Any]] = None,
    encrypted: Iterable[str] = (),
    other_config: Optional[Mapping[str, Any]] = None,
    failing: Iterable[str] = (),
) -> Run:
    """Evaluate __main__.py for `stack` with `config` (defaults to the committed file,
    with its encrypted and other namespaces' keys).

    secret_config: extra keys set as secrets (as `pulumi config set --secret` would);
    plaintext_secrets: set them without the secret flag instead.
    encrypted: full keys (`shia-chatbot:smtpPassword`) set as encrypted values: set and
    secret to the program, their value unknown (what the gate makes of `secure:`).
    other_config: other namespaces' keys (`aws:region`) -> value, which the program ignores.
    previous_outputs: the stack outputs of the last deployment (None: a new stack).
    failing: names of resources whose create fails, as a failed step's does in `up`;
    Run.outputs then holds only the outputs that resolved anyway (what the engine
    keeps of a failed update: pulumi/pulumi#15754).
    A program error is returned in Run.error, with whatever was registered before it;
    a stack the CLI would refuse to start raises StackFileError.
    """
    if config is None:
        inputs = stack_inputs(stack)
        config, encrypted, other_config = inputs.config, inputs.secure, inputs.others
    encrypted = frozenset(encrypted)
    config = apply_project_config(stack, config, encrypted, ROOT)
    secret_config = secret_config or {}
    mocks = _Mocks(preview, previous_outputs, frozenset(failing))
    monitor = _Recorder(mocks)
    runtime_settings.ROOT.set(None)  # a fresh Stack resource per run
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    all_config = {f"{PROJECT}:{k}": _encode(v) for k, v in {**config, **secret_config}.items()}
    all_config.update({k: _encode(v) for k, v in (other_config or {}).items()})
    # An encrypted value's text is the wire's unknown sentinel, never a made-up value.
    all_config.update({k: UNKNOWN for k in encrypted})
    secret_keys = [] if plaintext_secrets else [f"{PROJECT}:{k}" for k in secret_config]
    pulumi.runtime.set_all_config(all_config, secret_keys=[*secret_keys, *encrypted])

    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    error: Optional[BaseException] = None

    @pulumi.runtime.test
    def program():
        asyncio.get_event_loop().set_exception_handler(_quiet_asked_failures)
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        root = runtime_settings.get_root_resource()
        exported = getattr(root, "outputs", {}) or {}
        names = list(exported)

        async def secret_names():
            return {n for n in names if isinstance(exported[n], pulumi.Output) and await exported[n].is_secret()}

        async def collect():
            # One at a time: an output that depends on a failed resource never
            # resolves, and the others must still be kept.
            for name in names:
                try:
                    outputs[name] = await pulumi.Output.from_input(exported[name]).future(with_unknowns=True)
                except Exception:  # noqa: BLE001 - a failed resource's output
                    continue
            secret_outputs.update(await secret_names())

        return pulumi.Output.from_input(asyncio.ensure_future(collect()))

    try:
        with _undecrypted(encrypted):
            program()
    except Exception as exc:  # noqa: BLE001 - the caller asserts on it
        error = exc
    return Run(stack=stack, resources=[_registered(r, i) for r, i in zip(monitor.requests, monitor.ids)], outputs=outputs,
               secret_outputs=secret_outputs, error=error)


ASKED_FAILURE = "failed (as the test asked)"


def _quiet_asked_failures(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """A resource failed on purpose (`failing`) leaves futures nobody awaits; asyncio
    would log every one of them. Anything else is logged as usual."""
    if ASKED_FAILURE not in str(context.get("exception", "")):
        loop.default_exception_handler(context)


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
