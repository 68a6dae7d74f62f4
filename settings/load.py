"""Read the stack's config once, merge it over the environment defaults, validate it.

Any problem stops the program before a single resource is registered, with one
line per problem naming the key, the value and what is allowed. The error is a
`pulumi.RunError`, which the CLI prints without a traceback.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional, get_args

import pulumi
from pulumi.runtime.config import CONFIG, is_config_secret
from pydantic import BaseModel, ValidationError

from settings.defaults import defaults_for, deep_merge
from settings.model import Environment, StackConfig
from settings.secret_names import GENERATED, SECRET_KEYS

PROJECT = "shia-chatbot"


_HOST_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}$")
_SSH_HOST = re.compile(r"^ssh://(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?$")


class ConfigError(pulumi.RunError):
    """Invalid stack config; its message is one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack config:\n  " + "\n  ".join(problems))


def _key(path: str) -> str:
    return f"{PROJECT}:{path}"


def _raw_stack_config() -> tuple[dict[str, Any], list[str]]:
    """Every `shia-chatbot:*` key the stack sets (objects decoded from their JSON
    form), and the secret keys that were written in plaintext."""
    raw: dict[str, Any] = {}
    plaintext: list[str] = []
    prefix = f"{PROJECT}:"
    for full_key, value in CONFIG.get().items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix):]
        if key in SECRET_KEYS:
            if not is_config_secret(full_key):
                plaintext.append(
                    f"{full_key} is stored in plaintext; set it with "
                    f"`pulumi config set --secret {key}`"
                )
            continue
        raw[key] = _decode(value)
    return raw, plaintext


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
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> Optional[list[str]]:
    """The camelCase keys allowed at loc's parent, for 'unknown key' messages."""
    current: Any = model
    for item in loc[:-1]:
        fields = {f.alias or n: f for n, f in current.model_fields.items()}
        field = fields.get(item)
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *get_args(annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            # dict[..., Model]: skip the dict key in loc.
            values = [a for c in candidates for a in get_args(c)]
            nested = [c for c in values if isinstance(c, type) and issubclass(c, BaseModel)]
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
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{key} is not a known setting{hint}"
    value = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    if "[key]" in loc:
        message = message.replace("Input should be", "key should be")
    return f"{key} = {json.dumps(value)}: {message}"


def _check_relations(cfg: StackConfig, stack: str) -> list[str]:
    """Rules that tie several keys (or the stack name) together."""
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
    host = cfg.docker_host
    if host.startswith("tcp://"):
        if env != "dev":
            problems.append(
                f"{_key('dockerHost')} = {json.dumps(host)}: tcp:// is refused in {env} "
                "(unauthenticated Docker over TCP is root on the host); use ssh://user@host[:port]"
            )
    elif not (host.startswith("unix://") or _SSH_HOST.match(host)):
        problems.append(
            f"{_key('dockerHost')} = {json.dumps(host)}: allowed forms are unix:///path/docker.sock "
            "or ssh://user@host[:port]"
        )
    if host.startswith("ssh://"):
        if not cfg.docker_host_key:
            problems.append(
                f"{_key('dockerHostKey')} is required for an ssh:// dockerHost: the SSH steps send secrets "
                f"and must verify the host; get it with `ssh-keyscan -t ed25519 {ssh_parts(host)['host']}`")
        elif not _HOST_KEY.match(cfg.docker_host_key):
            problems.append(
                f"{_key('dockerHostKey')} = {json.dumps(cfg.docker_host_key)}: expected '<type> <base64>', "
                "type ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa")
    if (cfg.tls.enabled or env != "dev") and not cfg.domain:
        problems.append(f"{_key('domain')} is required in {env} (the public host name nginx serves)")
    budget = cfg.connection_budget()
    if budget > cfg.postgres_max_connections:
        problems.append(
            f"{_key('postgresMaxConnections')} = {cfg.postgres_max_connections}: too low for "
            f"{budget} possible connections (replicas x uvicornWorkers {cfg.uvicorn_workers} x "
            f"(app.dbPoolSize + app.dbMaxOverflow), plus the worker and jobs); raise it or lower those"
        )
    if cfg.monitoring.alert_email and cfg.smtp is None:
        problems.append(
            f"{_key('monitoring.alertEmail')} = {json.dumps(cfg.monitoring.alert_email)}: e-mail alerts "
            f"are sent through {_key('smtp')}; set smtp.host, smtp.user and smtp.fromEmail"
        )
    for name in cfg.rotation:
        if name not in GENERATED:
            problems.append(
                f"{_key('rotation.' + name)}: unknown secret; allowed: {', '.join(sorted(GENERATED))}"
            )
    return problems


def parse(raw: dict[str, Any], stack: str) -> StackConfig:
    """Validate raw stack config (camelCase keys) for `stack`; raise ConfigError."""
    env = raw.get("environment")
    if env not in get_args(Environment):
        shown = "is required but not set" if env is None else f"= {json.dumps(env)}"
        raise ConfigError([
            f"{_key('environment')} {shown}: allowed: {', '.join(get_args(Environment))}"
        ])
    merged = deep_merge(defaults_for(env), raw)
    try:
        cfg = StackConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError([_describe(e) for e in exc.errors()]) from None
    problems = _check_relations(cfg, stack)
    if problems:
        raise ConfigError(problems)
    return cfg


def load() -> StackConfig:
    """The stack's config, validated. Call once, before any resource."""
    raw, plaintext = _raw_stack_config()
    if plaintext:
        raise ConfigError(plaintext)
    return parse(raw, pulumi.get_stack())


def ssh_parts(docker_host: str) -> dict[str, Any]:
    """user, host and port of an ssh:// docker host (validated by parse)."""
    m = _SSH_HOST.match(docker_host)
    if not m:
        raise ValueError(f"not an ssh:// docker host: {docker_host}")
    return {"user": m["user"], "host": m["host"], "port": int(m["port"] or 22)}
