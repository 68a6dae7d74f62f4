"""The offline policy gate: the program's plan judged by the real policy pack,
with no Pulumi CLI, cloud account or credentials.

    venv/bin/python tools/policy_gate.py --stack prod [--first-preview] [--policy-config FILE]

Runs __main__.py for the stack under the SDK's mock monitor (tools/harness.py
keeps every RegisterResource request as sent, secret markers intact; with
--first-preview generated passwords are unknown, as in the first preview of a
new stack), starts the pack as the engine does, replays every resource through
Analyze and the whole plan through AnalyzeStack, and prints the violations the
way `pulumi preview` does.

Exit status: 0 without mandatory violations, 1 with some, 2 when the stack file
cannot be read (one line: file, key, problem), the program refuses its config,
or the pack or its policy config cannot be loaded.

The stack file is read as the CLI reads it (tools/stack_file.py). An encrypted
value (`secure:`) cannot be decrypted here: the program sees it set and secret
with an unknown value, as a preview shows what it cannot know, and the pack's
PULUMI_CONFIG leaves it out rather than carry ciphertext or a made-up value.

Where this differs from the engine, immaterially for this pack: properties are
the program's inputs (no provider Check adds defaults); AnalyzeStack gets those
inputs too, which is what a preview shows for resources being created;
default providers (random, command) are not registered; custom timeouts and
remediations are not replayed (the pack has none and the program sets none).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from pulumi.runtime.proto import analyzer_pb2

ROOT = Path(__file__).resolve().parents[1]
PACK_DIR = ROOT / "policies"
# The program imports its own packages (components, settings) from the project root.
for folder in (ROOT, Path(__file__).resolve().parent):
    sys.path.insert(0, str(folder))

import harness  # noqa: E402  (the program under the SDK's mocks, shared with the tests)
from policy_pack_client import (  # noqa: E402
    LEVEL_NAMES, PolicyPackError, PolicyPackProcess, reconcile, unknown_policies,
)
from stack_file import StackFileError  # noqa: E402

PROJECT = harness.PROJECT
EXIT_PASSED, EXIT_MANDATORY, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    level: str
    urn: str
    message: str

    @property
    def resource_type(self) -> str:
        return self.urn.split("::")[2].split("$")[-1]

    @property
    def resource_name(self) -> str:
        return self.urn.split("::", 3)[3]


@dataclass
class GateResult:
    stack: str
    first_preview: bool
    pack: str = ""
    version: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    program_error: Optional[str] = None
    resources: int = 0
    analyze_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def at(self, level: str) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == level]

    def policies(self, level: str = "mandatory") -> set[str]:
        return {d.policy for d in self.at(level)}

    @property
    def exit_code(self) -> int:
        if self.program_error:
            return EXIT_ERROR
        return EXIT_MANDATORY if self.at("mandatory") else EXIT_PASSED


def pulumi_config(settings: Mapping[str, Any], others: Optional[Mapping[str, Any]] = None) -> dict[str, str]:
    """PULUMI_CONFIG as the engine builds it: "project:key" -> string, objects JSON-encoded;
    `others` are other namespaces' keys, already "namespace:key"."""
    prefixed = {**{f"{PROJECT}:{k}": v for k, v in settings.items()}, **(others or {})}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in prefixed.items()}


def run_gate(stack: str, config: Optional[Mapping[str, Any]] = None, *, first_preview: bool = False,
             policy_config: Optional[Mapping[str, Any]] = None, secret_config: Optional[Mapping[str, str]] = None,
             plaintext_secrets: bool = False) -> GateResult:
    """Judge `stack`'s plan (`config` defaults to its Pulumi.<stack>.yaml, read as the CLI does).

    Raises StackFileError when that file is unusable (a CLI-refused file, or an
    encrypted value the program needs in plaintext)."""
    encrypted: frozenset[str] = frozenset()
    others: dict[str, Any] = {}
    file_warnings: list[str] = []
    if config is None:
        inputs = harness.stack_inputs(stack)
        settings, encrypted, others = inputs.config, inputs.secure, inputs.others
        file_warnings = inputs.warnings(PROJECT)
    else:
        settings = dict(config)
    harness.apply_project_config(stack, settings, encrypted, harness.ROOT)  # before the pack starts
    stack_config = pulumi_config({**settings, **(secret_config or {})}, others)
    result = GateResult(stack=stack, first_preview=first_preview, warnings=file_warnings)
    # Started first, so the pack boots while the program runs.
    with PolicyPackProcess(PACK_DIR, project=PROJECT, stack=stack, config=stack_config) as pack:
        run = harness.run(stack, settings, preview=first_preview, secret_config=dict(secret_config or {}),
                          plaintext_secrets=plaintext_secrets, encrypted=encrypted, other_config=others)
        if run.error is not None:
            result.program_error = str(run.error)
            return result
        started = time.perf_counter()
        _analyze(pack, run, stack_config, policy_config or {}, result)
        result.analyze_seconds = time.perf_counter() - started
    return result


def _urn(stack: str, parent: str, type_: str, name: str) -> str:
    # The mock monitor's scheme, so the parent URNs recorded in requests resolve.
    if parent:
        type_ = parent.split("::")[2].split("$")[-1] + "$" + type_
    return f"urn:pulumi:{stack}::{PROJECT}::{type_}::{name}"


def _analyze(pack: PolicyPackProcess, run: harness.Run, stack_config: Mapping[str, str],
             policy_config: Mapping[str, Any], result: GateResult) -> None:
    pack.configure_stack(run.stack, PROJECT, stack_config)
    info = pack.info()
    result.pack, result.version = info.name, pack.version or info.version
    result.warnings += [f"policy config names no policy of the pack: {name}"
                        for name in unknown_policies(info, policy_config)]
    pack.configure(reconcile(info, policy_config))

    urns = [_urn(run.stack, r.urn_parent, r.type, r.name) for r in run.resources]
    by_urn = dict(zip(urns, run.resources))
    result.resources = len(urns)
    for urn, registered in zip(urns, run.resources):
        request = analyzer_pb2.AnalyzeRequest(
            type=registered.type, properties=registered.request.object, urn=urn, name=registered.name,
            options=_options(registered.request), provider=_provider(registered.provider, by_urn))
        # The engine attributes a resource's diagnostics to that resource.
        result.diagnostics += _diagnostics(pack.analyze(request), urn, result)
    stack_resources = [_stack_resource(urn, r, by_urn) for urn, r in zip(urns, run.resources)]
    root = next(urn for urn, r in zip(urns, run.resources) if r.type == "pulumi:pulumi:Stack")
    # ... and a stack policy's diagnostics without a URN to the root stack.
    result.diagnostics += _diagnostics(pack.analyze_stack(stack_resources), root, result)


def _options(request: Any) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=request.protect, ignoreChanges=list(request.ignoreChanges),
        deleteBeforeReplace=request.deleteBeforeReplace,
        deleteBeforeReplaceDefined=request.deleteBeforeReplaceDefined,
        additionalSecretOutputs=list(request.additionalSecretOutputs), aliases=list(request.aliasURNs),
        parent=request.parent)


def _provider(reference: str, by_urn: Mapping[str, Any]) -> Optional[analyzer_pb2.AnalyzerProviderResource]:
    # A provider reference is "<urn>::<id>".
    urn = reference.rsplit("::", 1)[0] if reference else ""
    provider = by_urn.get(urn)
    if provider is None:
        return None
    return analyzer_pb2.AnalyzerProviderResource(type=provider.type, properties=provider.request.object,
                                                 urn=urn, name=provider.name)


def _stack_resource(urn: str, registered: Any, by_urn: Mapping[str, Any]) -> analyzer_pb2.AnalyzerResource:
    request = registered.request
    return analyzer_pb2.AnalyzerResource(
        type=registered.type, properties=request.object, urn=urn, name=registered.name,
        options=_options(request), provider=_provider(registered.provider, by_urn), parent=request.parent,
        dependencies=list(request.dependencies),
        propertyDependencies={key: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(deps.urns))
                              for key, deps in request.propertyDependencies.items()})


# The Python policy SDK hands the engine the version "0.0.1" for every pack and
# words its "can't run policy … during preview" notes with it (pulumi_policy
# policy.py); the CLI shows PulumiPolicy.yaml's version everywhere else. The
# gate names the pack once, with the manifest's version.
_SDK_PACK_VERSION = "@v0.0.1'"


def _diagnostics(response: analyzer_pb2.AnalyzeResponse, default_urn: str, result: GateResult) -> list[Diagnostic]:
    named = f"'{result.pack}{_SDK_PACK_VERSION}"
    return [Diagnostic(policy=d.policyName, level=LEVEL_NAMES[d.enforcementLevel], urn=d.urn or default_urn,
                       message=d.message.replace(named, f"'{result.pack}@v{result.version}'"))
            for d in response.diagnostics]


def render(result: GateResult) -> str:
    """The report in the layout of `pulumi preview`'s Policies section."""
    if result.program_error:
        message = result.program_error.replace("\n", "\n    ")
        return f"Diagnostics:\n  pulumi:pulumi:Stack ({PROJECT}-{result.stack}):\n    error: {message}\n"
    icon = "❌" if result.at("mandatory") else "⚠️" if result.diagnostics else "✅"
    lines = [f"warning: {w}" for w in result.warnings]
    lines += ["Policies:", f"    {icon} {result.pack}@v{result.version} (local: policies)"]
    for d in sorted(result.diagnostics, key=lambda d: (d.level, d.policy, d.urn)):
        lines.append(f"        - [{d.level}]  {d.policy}  ({d.resource_type}: {d.resource_name})")
        lines += [f"          {line}" for line in d.message.rstrip("\n").split("\n")]
    mode = "first preview, generated values unknown" if result.first_preview else "preview"
    lines += ["", f"{result.resources} resources analyzed in {result.analyze_seconds:.2f}s ({mode}): "
                  f"{len(result.at('mandatory'))} mandatory, {len(result.at('advisory'))} advisory."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack to judge (its Pulumi.<stack>.yaml); default dev")
    parser.add_argument("--first-preview", action="store_true",
                        help="generated values unknown, as in the first preview of a new stack")
    parser.add_argument("--policy-config", type=Path, help="a --policy-pack-config JSON file")
    args = parser.parse_args(argv)
    try:
        policy_config = json.loads(args.policy_config.read_text()) if args.policy_config else None
        result = run_gate(args.stack, first_preview=args.first_preview, policy_config=policy_config)
    except (StackFileError, PolicyPackError, OSError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(render(result), end="")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
