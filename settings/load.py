"""Read the stack's config once, merge it over the environment defaults, validate it.

Any problem stops the program before a single resource is registered, with one
line per problem naming the key, the value and what is allowed. The error is a
`pulumi.RunError`, which the CLI prints without a traceback.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Collection, Iterator, Optional, get_args, get_origin

import pulumi
from pulumi.runtime.config import CONFIG, is_config_secret
from pydantic import BaseModel, ValidationError

from settings import values
from settings.defaults import defaults_for, deep_merge
from settings.model import Environment, StackConfig
from settings.secret_names import GENERATED, NOT_ROTATED, ROTATABLE, SECRET_KEYS

PROJECT = "shia-chatbot"


_HOST_KEY = re.compile(r"(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}")
# The user never starts with '-' (it would read as an ssh option); the host is checked by values.host.
_SSH_HOST = re.compile(r"ssh://(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]*)@(?P<host>[^:/@]+)(?::(?P<port>[^/]*))?")
_TCP_HOST = re.compile(r"tcp://(?P<host>[^:/@]+):(?P<port>[^/]*)")
# A PEM private key is lines of text; every other secret is one line.
_MULTILINE_SECRETS = {"sshPrivateKey": "\r\n"}


class ConfigError(pulumi.RunError):
    """Invalid stack config; its message is one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack config:\n  " + "\n  ".join(problems))


def _key(path: str) -> str:
    return f"{PROJECT}:{path}"


def _raw_stack_config() -> tuple[dict[str, Any], list[str], set[str]]:
    """Every `shia-chatbot:*` key the stack sets (objects decoded from their JSON
    form), the problems of its secret keys (written in plaintext, or holding a
    control character), and which secret keys are set. A secret's value is only
    looked at, never kept or shown."""
    raw: dict[str, Any] = {}
    problems: list[str] = []
    secrets: set[str] = set()
    prefix = f"{PROJECT}:"
    for full_key, value in CONFIG.get().items():
        if not full_key.startswith(prefix):
            continue  # other namespaces' keys (aws:region, pulumi:tags) are the CLI's and providers'
        key = full_key[len(prefix):]
        if key in SECRET_KEYS:
            secrets.add(key)
            if not is_config_secret(full_key):
                problems.append(
                    f"{full_key} is stored in plaintext; set it with "
                    f"`pulumi config set --secret {key}`"
                )
            codes = values.control_characters(value, allowed=_MULTILINE_SECRETS.get(key, ""))
            if codes:
                problems.append(
                    f"{full_key} holds control characters ({', '.join(codes)}; the value is not shown): "
                    "a line break splits the env line or file it reaches; set it again without them")
            continue
        raw[key] = _decode(value)
    return raw, problems, secrets


def _decode(value: str) -> Any:
    # Objects and arrays arrive JSON-encoded; scalars arrive as strings and are
    # converted by pydantic ("2" -> 2, "true" -> True) so they stay strings here.
    if value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if item == "[key]":
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + _printable(str(item)))
    return "".join(parts)


def _printable(text: str) -> str:
    # A key holding a line break must not break the one-line message.
    return json.dumps(text)[1:-1] if values.control_characters(text) else text


def _strings(value: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(location, text) of every string in a config tree, dict keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield loc + (key,), str(key)
            yield from _strings(item, loc + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, loc + (index,))
    elif isinstance(value, str):
        yield loc, value


def _control_characters(raw: dict[str, Any]) -> dict[str, str]:
    """Problems by key path: no config string may hold a control or invisible format
    character (a line break ends an env-file line; a bidi override hides what a value says)."""
    found: dict[str, str] = {}
    for loc, text in _strings(raw):
        codes = values.control_characters(text)
        path = _path(loc)
        if codes and path not in found:
            found[path] = (f"{_key(path)} = {json.dumps(_leaf(raw, loc))}: control or invisible characters "
                           f"({', '.join(codes)}) are not allowed")
    return found


def _leaf(tree: Any, loc: tuple[Any, ...]) -> Any:
    for item in loc:
        tree = tree[item]
    return tree


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> Optional[list[str]]:
    """The camelCase keys allowed at loc's parent, for 'unknown key' messages."""
    current: Any = model
    dict_key_next = False
    for item in loc[:-1]:
        if dict_key_next:  # dict[..., Model]: this item is the dict's key (a slot name)
            dict_key_next = False
            continue
        fields = {f.alias or n: f for n, f in current.model_fields.items()}
        field = fields.get(item)
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *get_args(annotation)]
        # dict[..., Model]: the next loc item is the dict's key, not a field.
        dict_key_next = any(get_origin(c) is dict for c in candidates)
        nested = [c for c in (*candidates, *(a for c in candidates for a in get_args(c)))
                  if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        current = nested[0]
    return sorted(f.alias or n for n, f in current.model_fields.items())


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    key = _key(_path(loc))
    kind = error["type"]
    if kind == "missing":
        return f"{key} is required but not set"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(StackConfig, loc)
        return f"{key} is not a known setting{_did_you_mean(str(loc[-1]), allowed)}"
    value = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    if "[key]" in loc:
        message = message.replace("Input should be", "key should be")
    return f"{key} = {_shown(value)}: {message}"


def _did_you_mean(name: str, allowed: Optional[list[str]]) -> str:
    """`; did you mean x?` for a near miss, else the allowed keys."""
    if not allowed:
        return ""
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else f"; allowed keys: {', '.join(allowed)}"


_YAML_SCALAR = re.compile(r"-?[0-9]+(\.[0-9]+)?|true|false")


def _shown(value: Any) -> str:
    """A value as the stack file wrote it: the CLI hands the program `hostCpus: 0` as
    the string "0", which is shown bare, like the YAML it came from."""
    if isinstance(value, str) and _YAML_SCALAR.fullmatch(value):
        return value
    return json.dumps(value)


def _docker_host_problem(host: str, env: str) -> Optional[str]:
    """What is wrong with dockerHost, if anything. It is the provider's host, the SSH
    steps' target and the local steps' DOCKER_HOST."""
    forms = "allowed forms are unix:///path/docker.sock or ssh://user@host[:port]"
    try:
        if host.startswith("unix://"):
            values.host_path(host[len("unix://"):])
            return None
        if host.startswith("tcp://"):
            if env != "dev":
                return (f"tcp:// is refused in {env} (unauthenticated Docker over TCP is root on the host); "
                        "use ssh://user@host[:port]")
            tcp = _TCP_HOST.fullmatch(host)
            if tcp is None:
                return f"{forms}, or tcp://host:port in dev"
            values.host(tcp["host"])
            values.port(tcp["port"])
            return None
        ssh = _SSH_HOST.fullmatch(host)
        if ssh is None:
            return forms
        values.host(ssh["host"])
        if ssh["port"] is not None:
            values.port(ssh["port"])
    except values.Invalid as error:
        return str(error)
    return None


def _environment_rules(cfg: StackConfig) -> list[str]:
    """What dev may do and stage and prod may not: wildcard or http origins, http endpoints."""
    env = cfg.environment
    if env == "dev":
        return []
    problems = []
    for index, entry in enumerate(cfg.app.cors_origins):
        shown = f"{_key(f'app.corsOrigins[{index}]')} = {json.dumps(entry)}"
        if entry == "*" or "://*." in entry:
            problems.append(f"{shown}: a wildcard is refused in {env} (it lets any site call the API "
                            "with the user's browser); list the site's https origins")
        elif not entry.startswith("https://"):
            problems.append(f"{shown}: must be https in {env} (http origins only in dev)")
    for key, url in (("openrouterBaseUrl", cfg.openrouter_base_url), ("langfuseHost", cfg.langfuse_host)):
        if url is not None and not url.startswith("https://"):
            problems.append(f"{_key(key)} = {json.dumps(url)}: must be https in {env} (http only in dev)")
    return problems


def _check_relations(cfg: StackConfig, stack: str, secrets: Collection[str] = ()) -> list[str]:
    """Rules that tie several keys (or the stack name, or which secrets are set) together."""
    problems: list[str] = []
    env = cfg.environment
    if stack != env and not stack.startswith(f"{env}-"):
        problems.append(
            f"{_key('environment')} = {json.dumps(env)}: stack {stack!r} must be named "
            f"'{env}' or start with '{env}-'"
        )
    if cfg.active_slot not in cfg.slots:
        problems.append(
            f"{_key('activeSlot')} = {json.dumps(cfg.active_slot)}: the active slot must be one of "
            f"the deployed slots ({', '.join(sorted(cfg.slots))}); add it under {_key('slots')}"
        )
    problems += _ssh_host_problems("dockerHost", cfg.docker_host, cfg.docker_host_key, "dockerHostKey", env)
    if (cfg.tls.enabled or env != "dev") and not cfg.domain:
        problems.append(f"{_key('domain')} is required in {env} (the public host name nginx serves)")
    budget = cfg.connection_budget()
    if budget > cfg.postgres_max_connections:
        problems.append(
            f"{_key('postgresMaxConnections')} = {cfg.postgres_max_connections}: too low for "
            f"{budget} possible connections (replicas x uvicornWorkers {cfg.uvicorn_workers} x "
            f"(app.dbPoolSize + app.dbMaxOverflow), plus the worker and jobs); raise it or lower those"
        )
    postgres_release, backup_release = _distribution(cfg.images.postgres), _distribution(cfg.images.backup_base)
    if postgres_release != backup_release:
        problems.append(
            f"{_key('images.backupBase')} = {json.dumps(cfg.images.backup_base)}: must be the distribution release "
            f"of {_key('images.postgres')} = {json.dumps(cfg.images.postgres)} "
            f"({_release_name(postgres_release)}, e.g. {_base_for(postgres_release)}): both install pgBackRest from "
            "it, and the two ends of one repository must run the same pgBackRest version")
    if cfg.monitoring.alert_email and cfg.smtp is None:
        problems.append(
            f"{_key('monitoring.alertEmail')} = {json.dumps(cfg.monitoring.alert_email)}: e-mail alerts "
            f"are sent through {_key('smtp')}; set smtp.host, smtp.user and smtp.fromEmail"
        )
    problems += _offsite_alerting(cfg, secrets)
    problems += _swarm_nodes(cfg)
    for name in cfg.rotation:
        if name in NOT_ROTATED:
            problems.append(
                f"{_key('rotation.' + name)}: {name} is not rotated by the stack (a new value would lock the backup "
                f"job out of its repositories); see docs/secrets.md; rotatable: {', '.join(sorted(ROTATABLE))}")
        elif name not in GENERATED:
            problems.append(
                f"{_key('rotation.' + name)}: unknown secret; allowed: {', '.join(sorted(ROTATABLE))}"
            )
    if cfg.registry is not None and "registryPassword" not in secrets:
        problems.append(
            f"{_key('registry')} = {json.dumps(cfg.registry.model_dump(by_alias=True))}: needs the secret "
            f"{_key('registryPassword')} (`pulumi config set --secret registryPassword`); set both or neither")
    if cfg.registry is None and "registryPassword" in secrets:
        problems.append(
            f"{_key('registryPassword')} is set without {_key('registry')}: set registry.server and "
            "registry.username too, or remove the password")
    return problems + _environment_rules(cfg)


# Prod keeps serving with one app node lost.
MIN_APP_NODES = {"dev": 1, "stage": 1, "prod": 2}


def _ssh_host_problems(key: str, host: str, host_key: Optional[str], key_key: str, env: str) -> list[str]:
    """dockerHost and its host key, for the stack's host or a node's."""
    problem = _docker_host_problem(host, env)
    if problem:
        return [f"{_key(key)} = {json.dumps(host)}: {problem}"]
    if not host.startswith("ssh://"):
        return []
    if not host_key:
        return [f"{_key(key_key)} is required for an ssh:// dockerHost: the SSH steps send secrets "
                f"and must verify the host; get it with `ssh-keyscan -t ed25519 {ssh_parts(host)['host']}`"]
    if not _HOST_KEY.fullmatch(host_key):
        return [f"{_key(key_key)} = {json.dumps(host_key)}: expected '<type> <base64>', "
                "type ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa"]
    return []


def _swarm_nodes(cfg: StackConfig) -> list[str]:
    """runtime swarm: the nodes' roles add up to a swarm that keeps its quorum
    and has somewhere to run everything; runtime docker: no nodes."""
    if cfg.runtime == "docker":
        if cfg.nodes:
            return [f"{_key('nodes')} is set but {_key('runtime')} = \"docker\" (one host, {_key('dockerHost')}): "
                    f"set {_key('runtime')} to \"swarm\" to use the nodes, or remove them"]
        return []
    if not cfg.nodes:
        return [f"{_key('nodes')} is required with {_key('runtime')} = \"swarm\": a map from each node's "
                "hostname to {dockerHost, hostKey, roles}, roles from manager, edge, app, data"]
    problems: list[str] = []
    for name, node in cfg.nodes.items():
        problems += _ssh_host_problems(f"nodes.{name}.dockerHost", node.docker_host, node.host_key,
                                       f"nodes.{name}.hostKey", cfg.environment)
    having = {role: sorted(n for n, node in cfg.nodes.items() if role in node.roles)
              for role in ("manager", "edge", "app", "data")}
    managers = len(having["manager"])
    if managers % 2 == 0:
        problems.append(
            f"{_key('nodes')}: {managers} managers ({', '.join(having['manager']) or 'none'}); Swarm needs an odd "
            "number (1, 3, 5): a majority of them must agree, and an even number tolerates no more lost "
            "managers than one fewer")
    for role in ("edge", "app", "data"):
        if not having[role]:
            problems.append(f"{_key('nodes')}: no node has the role {role}; allowed roles: manager, edge, app, data")
    if len(having["data"]) > 1:
        problems.append(
            f"{_key('nodes')}: {len(having['data'])} data nodes ({', '.join(having['data'])}); exactly one: the data "
            "services' volumes are local to a node, so each service is pinned to the one data node")
    needed = MIN_APP_NODES[cfg.environment]
    if having["app"] and len(having["app"]) < needed:
        problems.append(
            f"{_key('nodes')}: {len(having['app'])} app node(s) ({', '.join(having['app'])}); {cfg.environment} needs "
            f"at least {needed}, so losing one leaves the slots running")
    if cfg.publish_flower:
        problems.append(f"{_key('publishFlower')} = true binds Flower to 127.0.0.1, which a Swarm service cannot "
                        f"(its ports listen on every address): set {_key('publishFlower')} to false with "
                        f"{_key('runtime')} = \"swarm\"")
    hosts = [node.docker_host for node in cfg.nodes.values()]
    repeated = sorted({h for h in hosts if hosts.count(h) > 1})
    if repeated and not cfg.environment == "dev":
        problems.append(f"{_key('nodes')}: {', '.join(repeated)} is the dockerHost of several nodes; each node is "
                        "its own machine")
    manager_hosts = {cfg.nodes[n].docker_host for n in having["manager"]}
    if manager_hosts and cfg.docker_host not in manager_hosts:
        problems.append(
            f"{_key('dockerHost')} = {json.dumps(cfg.docker_host)}: with {_key('runtime')} = \"swarm\" it must be a "
            f"manager's dockerHost ({', '.join(sorted(manager_hosts))}): services are created through a manager")
    return problems


def _offsite_alerting(cfg: StackConfig, secrets: Collection[str]) -> list[str]:
    """Off-site copies are as fresh as the job that makes them: a backup job that
    stops or keeps failing must reach someone while the last good copy is still
    recent. That takes the alert rules and Alertmanager (level full+alerts) and a
    receiver for them."""
    if cfg.backups.offsite != "s3":
        return []
    offsite = f'{_key("backups.offsite")} = "s3"'
    if cfg.monitoring.level != "full+alerts":
        return [f"{_key('monitoring.level')} = {json.dumps(cfg.monitoring.level)}: must be \"full+alerts\" "
                f"with {offsite}, so that a backup job that stops or keeps failing pages someone"]
    if not cfg.monitoring.alert_email and "alertWebhookUrl" not in secrets:
        return [f"{_key('monitoring.alertEmail')} is empty and the secret {_key('alertWebhookUrl')} is not set: "
                f"with {offsite} alerts must reach someone; set monitoring.alertEmail (with smtp) or "
                "`pulumi config set --secret alertWebhookUrl …`"]
    return []


# A tag's distribution release: `...-alpine3.20`, `alpine:3.20.3`; `...-bookworm`, `debian:bookworm-slim`.
_ALPINE_TAG = re.compile(r"(?:^alpine:|-alpine)(\d+\.\d+)(?:\.\d+)?(?:$|-)")
_DEBIAN_TAG = re.compile(r"(?:^debian:|-)(bookworm|bullseye|trixie)(?:$|-)")


def _distribution(image: str) -> Optional[tuple[str, str]]:
    """The distribution release an image's tag names: `postgres:15.10-alpine3.20` and
    `alpine:3.20.3` -> ("alpine", "3.20"); `postgres:15.10-bookworm` and
    `debian:bookworm-slim` -> ("debian", "bookworm"); None when the tag does not say."""
    tag = image.rsplit("/", 1)[-1]
    match = _ALPINE_TAG.search(tag)
    if match:
        return ("alpine", match[1])
    match = _DEBIAN_TAG.search(tag)
    return ("debian", match[1]) if match else None


def _release_name(release: Optional[tuple[str, str]]) -> str:
    return f"{release[0]} {release[1]}" if release else "a release its tag does not name; pin one"


def _base_for(release: Optional[tuple[str, str]]) -> str:
    if release is None:
        return "postgres:15.10-alpine3.20 with alpine:3.20.3"
    return f"alpine:{release[1]}.<patch>" if release[0] == "alpine" else f"debian:{release[1]}-slim"


def parse(raw: dict[str, Any], stack: str, *, secrets: Collection[str] = ()) -> StackConfig:
    """Validate raw stack config (camelCase keys) for `stack`; raise ConfigError.

    secrets: the secret keys the stack sets (their values never come here)."""
    control = _control_characters(raw)
    env = raw.get("environment")
    if env not in get_args(Environment):
        shown = "is required but not set" if env is None else f"= {json.dumps(env)}"
        misspelt = [k for k in raw if k not in StackConfig.model_fields and k != "environment"
                    and difflib.get_close_matches(k, ["environment"], cutoff=0.75)] if env is None else []
        hint = f" ({_key(misspelt[0])} is set: a typo?)" if misspelt else ""
        raise ConfigError(list(control.values()) or [
            f"{_key('environment')} {shown}: allowed: {', '.join(get_args(Environment))}{hint}"
        ])
    merged = deep_merge(defaults_for(env), raw)
    try:
        cfg = StackConfig.model_validate(merged)
    except ValidationError as exc:
        # A value with a control character is reported once, for that.
        described = [_describe(e) for e in exc.errors() if not _under(_path(tuple(e["loc"])), control)]
        raise ConfigError([*control.values(), *described]) from None
    # Relations read the values; one holding a control character is already reported.
    problems = list(control.values()) or _check_relations(cfg, stack, secrets)
    if problems:
        raise ConfigError(problems)
    return cfg


def _under(path: str, reported: Collection[str]) -> bool:
    return any(path == r or path.startswith((f"{r}.", f"{r}[")) for r in reported)


def load() -> StackConfig:
    """The stack's config, validated. Call once, before any resource."""
    raw, problems, secrets = _raw_stack_config()
    if problems:
        raise ConfigError(problems)
    return parse(raw, pulumi.get_stack(), secrets=secrets)


def ssh_parts(docker_host: str) -> dict[str, Any]:
    """user, host and port of an ssh:// docker host (validated by parse)."""
    m = _SSH_HOST.fullmatch(docker_host)
    if not m:
        raise ValueError(f"not an ssh:// docker host: {docker_host}")
    return {"user": m["user"], "host": m["host"], "port": int(m["port"] or 22)}
