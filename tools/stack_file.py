"""Read Pulumi.<stack>.yaml as the Pulumi CLI does, for the offline tools (harness, gate, tests).

    read(path) -> StackFile   # raises StackFileError, whose message is one line

The rules follow the CLI's own source (github.com/pulumi/pulumi):
- sdk/go/common/resource/config/key.go `ParseKey`: a key is `<namespace>:<name>`
  (exactly one ':'), or the old `<namespace>:config:<name>`; anything else is
  refused. Keys of every namespace are legal (`aws:region`, `pulumi:tags`);
  the program reads only its own.
- sdk/go/common/workspace/loaders.go `stackConfigNamespacedWithProject` (since
  v3.44): a stack-file key without ':' is the project's key, so `domain:` means
  `shia-chatbot:domain`.
- sdk/go/common/resource/config/object.go `isSecureValue`: a mapping whose only
  key is `secure` with a string is an encrypted value (`pulumi config set
  --secret`); one nested in an object makes that whole key secret.
- loaders.go `checkForEmptyConfig`: a key with no value is the empty string.
- The stack file is read with gopkg.in/yaml.v3: a repeated mapping key is an
  error, and only true/false are booleans (YAML 1.2); dates stay text.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "shia-chatbot"
STACK_FILE_KEYS = ("config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt")


class StackFileError(Exception):
    """A stack file the CLI would refuse or the offline tools cannot use; the message is one line."""


@dataclass(frozen=True)
class StackFile:
    """What a stack file sets, split as its consumers need it.

    config: the project's keys, names without `shia-chatbot:`, plain values only
        (objects and lists as YAML gave them; top-level scalars as written).
    secure: full keys (`ns:name`) whose value is, or holds, an encrypted value.
    others: other namespaces' keys (`aws:region`), full key -> plain value.
    """

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    secure: frozenset[str] = frozenset()
    others: dict[str, Any] = field(default_factory=dict)
    # Where each full key is written (line, column; 1-based), for messages.
    lines: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return display_name(self.path)

    def warnings(self, project: str = PROJECT) -> list[str]:
        """Keys whose namespace is a near miss of the project's: legal to the CLI,
        which hands them to no one, so the setting silently does nothing."""
        found = []
        for full in sorted(self.others):
            namespace = full.split(":", 1)[0]
            if difflib.SequenceMatcher(None, namespace, project).ratio() >= 0.8:
                line = self.lines.get(full, (0, 0))[0]
                found.append(f"{self.name}:{line}: {full} belongs to no one: did you mean "
                             f"{project}:{full.split(':', 1)[1]}?")
        return found

    def where(self, full_key: str) -> str:
        """`Pulumi.prod.yaml:12:3` for a key of this file (just the file name if unknown)."""
        line = self.lines.get(full_key)
        return f"{self.name}:{line[0]}:{line[1]}" if line else self.name


def display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


class _Loader(yaml.SafeLoader):
    """yaml.v3's reading of a stack file: YAML 1.2 booleans, no timestamps,
    repeated keys refused."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                continue  # an unhashable key: the base class reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"mapping key {key!r} already defined at line {seen[key].line + 1}",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def parse_key(key: str, project: str = PROJECT) -> tuple[str, str]:
    """(namespace, name) of a stack-file config key, as the CLI reads it; ValueError if it is none."""
    parts = key.split(":")
    if len(parts) == 1:
        return project, key
    if len(parts) == 2:
        return parts[0], parts[1]
    if len(parts) == 3 and parts[1] == "config":
        return parts[0], parts[2]
    raise ValueError(key)


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("secure"), str)


def _holds_secure(value: Any) -> bool:
    if _is_secure(value):
        return True
    if isinstance(value, dict):
        return any(_holds_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secure(v) for v in value)
    return False


def _yaml_problem(name: str, error: yaml.YAMLError) -> StackFileError:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if "'\\t'" in problem:
        problem = "a tab character where YAML expects indentation or a value; YAML indents with spaces only"
    else:
        context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and context_mark is not None and context_mark is not mark:
            problem += f" ({context} that starts at {context_mark.line + 1}:{context_mark.column + 1})"
        elif context:
            problem += f" ({context})"
    return StackFileError(f"{where}: not valid YAML: {problem}")


def read(path: Path, project: str = PROJECT) -> StackFile:
    """Read one stack file; raise StackFileError (one line naming file, key and problem)."""
    name = display_name(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # the CLI strips a byte-order mark too
    except FileNotFoundError:
        raise StackFileError(f"{name}: no such stack file (pulumi stack init, then pulumi config set)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise StackFileError(f"{name}: cannot be read: {error}") from None
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
            top = loader.construct_document(root) if root is not None else None
        except yaml.YAMLError as error:
            raise _yaml_problem(name, error) from None
        if top is None:
            raise StackFileError(f"{name}: the file is empty; it needs a config: mapping with the stack's "
                                 f"settings ({project}:environment first)")
        if not isinstance(top, dict):
            raise StackFileError(f"{name}:1:1: must be a YAML mapping with a config: key, not a {_kind(top)}")
        nodes = {key.value: (key, value) for key, value in root.value if isinstance(key, yaml.ScalarNode)}
        if "environment" in nodes:
            hint = (f"; the stack's environment is {project}:environment under config:"
                    if isinstance(top.get("environment"), str) else "")
            raise StackFileError(f"{name}:{_mark(nodes['environment'][0])}: the top-level environment: key "
                                 f"imports Pulumi ESC environments, which the offline tools cannot open{hint}")
        if "config" not in nodes:
            misplaced = [str(k) for k in top if str(k) not in STACK_FILE_KEYS]
            hint = f" (found at the top level: {', '.join(misplaced)})" if misplaced else ""
            raise StackFileError(f"{name}: no config: mapping{hint}; the stack's settings go under config:")
        config_key, config_node = nodes["config"]
        if top["config"] is None:
            return StackFile(path=path)
        if not isinstance(config_node, yaml.MappingNode):
            raise StackFileError(f"{name}:{_mark(config_key)}: config: must be a mapping of "
                                 f"<namespace>:<name> keys, not a {_kind(top['config'])}")
        return _config(path, loader, config_node, project)
    finally:
        loader.dispose()


def _config(path: Path, loader: _Loader, mapping: yaml.MappingNode, project: str) -> StackFile:
    name = display_name(path)
    config: dict[str, Any] = {}
    others: dict[str, Any] = {}
    secure: set[str] = set()
    lines: dict[str, tuple[int, int]] = {}
    written: dict[str, str] = {}
    for key_node, value_node in mapping.value:
        where = f"{name}:{_mark(key_node)}"
        raw_key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        try:
            if raw_key is None:
                raise ValueError
            namespace, key = parse_key(raw_key, project)
        except ValueError:
            shown = raw_key if raw_key is not None else "a non-scalar key"
            raise StackFileError(f"{where}: {shown} is not a configuration key: keys are <namespace>:<name> "
                                 "with a single ':' (Pulumi's config.ParseKey)") from None
        full = f"{namespace}:{key}"
        if full in written:
            raise StackFileError(f"{where}: {raw_key} sets {full} again "
                                 f"(line {lines[full][0]} sets it as {written[full]})")
        written[full] = raw_key
        lines[full] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        value = loader.construct_object(value_node, deep=True)
        value = "" if value is None else value
        if isinstance(value, dict) and list(value) == ["secure"] and not (_is_secure(value) and value["secure"]):
            # What an editor leaves of `pulumi config set --secret`'s output, not a plaintext value.
            raise StackFileError(f"{where}: {full} has an empty secure: value; set it again with "
                                 f"`pulumi config set --secret {key}`")
        if _holds_secure(value):
            secure.add(full)
        elif namespace == project:
            config[key] = value
        else:
            others[full] = value
    return StackFile(path=path, config=config, secure=frozenset(secure), others=others, lines=lines)


def _mark(node: yaml.Node) -> str:
    return f"{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "scalar")


def read_stack(stack: str, root: Path = ROOT) -> StackFile:
    """The stack's own file, Pulumi.<stack>.yaml next to Pulumi.yaml."""
    return read(root / f"Pulumi.{stack}.yaml")


def declared(root: Path = ROOT, project: str = PROJECT) -> dict[str, dict[str, Any]]:
    """Pulumi.yaml's config declarations by key name (the project's namespace only)."""
    document = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    names = {}
    for key, declaration in (document.get("config") or {}).items():
        namespace, name = parse_key(key, project)  # a bare key is the project's here too (pkg/workspace/config.go)
        if namespace == project:
            names[name] = declaration if isinstance(declaration, dict) else {"default": declaration}
    return names


def apply_project_config(stack: str, config: Mapping[str, Any], encrypted: Iterable[str] = (),
                         root: Path = ROOT, project: str = PROJECT) -> dict[str, Any]:
    """As the CLI does before it starts the program: a key Pulumi.yaml declares without a
    default must be set (plainly or encrypted); declared defaults fill what is unset."""
    merged = dict(config)
    set_names = set(merged) | {k.split(":", 1)[1] for k in encrypted if k.startswith(f"{project}:")}
    missing = []
    for key, declaration in declared(root, project).items():
        if key in set_names:
            continue
        if "default" not in declaration:
            missing.append(f"{project}:{key}")
        else:
            merged[key] = declaration["default"]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        pronoun = "it" if len(missing) == 1 else "them"
        declared_names = set(declared(root, project))
        typos = [f"{project}:{name}" for name in sorted(set_names - declared_names)
                 if any(difflib.get_close_matches(name, [m.split(":", 1)[1]], cutoff=0.75) for m in missing)]
        hint = f"; {' and '.join(typos)} is set: a typo?" if typos else ""
        raise StackFileError(
            f"{display_name(root / f'Pulumi.{stack}.yaml')}: {' and '.join(missing)} {verb} required but not set "
            f"(Pulumi.yaml declares {pronoun} without a default, so the CLI refuses the stack){hint}")
    return merged
