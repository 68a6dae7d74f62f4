"""Credentials: every data service demands one, and none is a value someone typed into plain config."""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterator, Optional
from urllib.parse import urlsplit

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity, StackValidationArgs

from shia_policies.resources import Container, containers
from shia_policies.spec import ADVISORY, MANDATORY, Check, Levels, Rule
from shia_policies.stack import StackContext

# Values shipped as defaults or typed as placeholders; compared case-insensitively.
PLACEHOLDERS = ("minioadmin", "changeme", "change-me", "password", "secret", "admin", "example", "test")
MINIO_MIN_PASSWORD = 8  # MinIO refuses shorter root passwords
_REQUIREPASS = re.compile(r"--requirepass\s+(\"[^\"]*\"|'[^']*'|\S+)")
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_ACL_DEFAULT_OFF = "user default off"
_ACL_SECRET = re.compile(r"\w*_PASSWORD(?:_SHA256)?")
# The heuristic for a secret-looking variable name.
SECRET_ENV_NAME = re.compile(r"^(?:.*_PASSWORD|.*_SECRET.*|.*_KEY|.*TOKEN.*)$")
# A config key named like a secret is assumed set with --secret (settings/load.py
# refuses the program's own secret keys in plaintext).
SECRET_CONFIG_NAME = re.compile(r"(?i)(?:password|secret|token|key)s?$")
# Shorter config values (ports, flags, slot names) would match by chance.
MIN_LITERAL_LENGTH = 6


def _weak(value: str) -> Optional[str]:
    if not value:
        return "is empty"
    if value.lower() in PLACEHOLDERS:
        return "is a well-known default"
    return None


def _redis(container: Container, report: ReportViolation) -> None:
    command = " ".join(container.command)
    if _ACL_DEFAULT_OFF in command:
        # ACL users (components/data/redis_acl.py): each one's password or
        # digest comes from a variable the command names.
        for variable in sorted(set(_VARIABLE.findall(command))):
            if _ACL_SECRET.fullmatch(variable):
                _require(container, variable, "that Redis user would have an empty password", report)
        return
    match = _REQUIREPASS.search(command)
    if match is None:
        report("Redis runs without --requirepass or ACL users with the default user off: anyone on its network "
               "can read and write the broker.")
        return
    argument = match[1].strip("'\"")
    variable = _VARIABLE.fullmatch(argument)
    if variable is None:
        problem = _weak(argument) or "is written on the command line, where `docker inspect` shows it"
        report(f"the Redis password {problem}; pass it from the environment.")
        return
    _require(container, variable[1], "Redis would accept the empty password", report)


# Where a swarm's Qdrant reads its keys (config/local.yaml under its working directory).
QDRANT_SECRET_CONFIG = "/qdrant/config/local.yaml"


def _qdrant(container: Container, report: ReportViolation) -> None:
    if QDRANT_SECRET_CONFIG in container.secret_files:
        return
    _require(container, "QDRANT__SERVICE__API_KEY", "anyone on its network can read and delete collections",
             report)


def _minio(container: Container, report: ReportViolation) -> None:
    env = container.env
    user = env.get("MINIO_ROOT_USER") or env.get("MINIO_ACCESS_KEY")
    password = env.get("MINIO_ROOT_PASSWORD") or env.get("MINIO_SECRET_KEY")
    for what, value in (("root user", user), ("root password", password)):
        problem = _weak(value) if value is not None else None
        if problem:
            report(f"the MinIO {what} {problem}.")
    if password is not None and 0 < len(password) < MINIO_MIN_PASSWORD:
        report(f"the MinIO root password is shorter than {MINIO_MIN_PASSWORD} characters.")
    if container.from_secret_file("MINIO_ROOT_USER") and container.from_secret_file("MINIO_ROOT_PASSWORD"):
        return
    if user is None or password is None:
        env.settle("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")
        report("MINIO_ROOT_USER / MINIO_ROOT_PASSWORD are not set: MinIO falls back to minioadmin:minioadmin.")


def _postgres(container: Container, report: ReportViolation) -> None:
    if (container.env.get("POSTGRES_HOST_AUTH_METHOD") or "").lower() == "trust":
        report("POSTGRES_HOST_AUTH_METHOD=trust: any client connects without a password.")
    if container.env.get("POSTGRES_PASSWORD_FILE"):
        return
    _require(container, "POSTGRES_PASSWORD", "the database has no superuser password", report)


def _require(container: Container, key: str, consequence: str, report: ReportViolation) -> None:
    """`key` set and not weak, or on a swarm read from a mounted secret (its value generated)."""
    if container.from_secret_file(key):
        return
    value = container.env.get(key)
    problem = _weak(value) if value is not None else None
    if problem:
        report(f"{key} {problem}: {consequence}.")
    container.env.settle(key)
    if value is None:
        report(f"{key} is not set: {consequence}.")


SERVICE_CHECKS: dict[str, Callable[[Container, ReportViolation], None]] = {
    "redis": _redis, "qdrant": _qdrant, "minio": _minio, "postgres": _postgres,
}


def service_authentication(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = Container.of(args.resource_type, args.props)
    check = SERVICE_CHECKS.get(container.service) if container is not None else None
    if check is not None:
        check(container, report)


def _leaves(path: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(f"{path}.{key}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(f"{path}[{index}]", item)
    elif isinstance(value, str):
        yield path, value


def plain_config_values(stack: StackContext) -> dict[str, str]:
    """value -> config key, for every stack config value under a key not named like a secret."""
    found: dict[str, str] = {}
    for key, raw in stack.config.items():
        try:
            decoded = json.loads(raw) if raw[:1] in "{[" else raw
        except json.JSONDecodeError:
            decoded = raw
        for path, value in _leaves(key, decoded):
            name = re.split(r"[.:]", re.sub(r"\[\d+\]", "", path))[-1]  # the key, not a list index
            if len(value) >= MIN_LITERAL_LENGTH and not SECRET_CONFIG_NAME.search(name):
                found.setdefault(value, path)
    return found


def _url_credentials(value: str) -> tuple[Optional[str], Optional[str]]:
    """(user, password) of a URL value (DATABASE_URL, MC_HOST_*); (None, None) otherwise."""
    if "://" not in value:
        return None, None
    try:
        parts = urlsplit(value)
        return parts.username, parts.password
    except ValueError:  # not a URL after all (an unbalanced "[" in the host, say)
        return None, None


def _secret_values(name: str, value: str) -> Iterator[str]:
    """The secret parts of an env var: all of it when its name looks secret,
    else the password of a URL (DATABASE_URL, MC_HOST_*)."""
    if SECRET_ENV_NAME.match(name):
        yield value
    else:
        password = _url_credentials(value)[1]
        if password:
            yield password


def secret_env_literals(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = Container.of(args.resource_type, args.props)
    if container is None:
        return
    literals = plain_config_values(c.stack)
    # Unknown entries are values generated at deploy time: never a config literal.
    for name, value in container.env.values.items():
        for secret in _secret_values(name, value):
            if secret.lower() in PLACEHOLDERS:
                report(f"{name} holds a well-known placeholder value.")
            elif secret in literals:
                report(f"{name} holds the value of stack config {literals[secret]}, stored in plaintext: "
                       "set it with `pulumi config set --secret` under a secret key.")


# A service's root credential, by the variable its own image reads: only that
# service's container may carry it (components/data/*: the superuser's
# password, MinIO's root, the Redis admin user's password).
ROOT_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "postgres": ("POSTGRES_PASSWORD",),
    "minio": ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"),
    "redis": ("REDIS_ADMIN_PASSWORD",),
}
# Where a root login name would show up in another container's environment.
_LOGIN_NAMES = {"postgres": "POSTGRES_USER", "minio": "MINIO_ROOT_USER"}
_USER_VARIABLES = ("PGUSER", "PG1_USER", "DATA_SOURCE_USER", "MINIO_ACCESS_KEY", "AWS_ACCESS_KEY_ID")


def _login_users(env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(variable, user) for every login name in an environment: the user
    variables, and the user of every URL value."""
    for name, value in env.items():
        if name in _USER_VARIABLES:
            yield name, value
        else:
            user = _url_credentials(value)[0]
            if user:
                yield name, user


def root_credentials_owned(c: Check, args: StackValidationArgs, report: ReportViolation) -> None:
    found = containers(args.resources)
    secrets: dict[str, tuple[str, str]] = {}  # value -> (service, variable)
    logins: dict[str, str] = {}  # root login name -> service
    for _, container in found:
        owned = ROOT_CREDENTIALS.get(container.service, ())
        for variable in owned:
            value = container.env.get(variable)
            if value and len(value) >= MIN_LITERAL_LENGTH:
                secrets[value] = (container.service, variable)
        login = container.env.get(_LOGIN_NAMES.get(container.service, ""))
        if login:
            logins[login] = container.service
    for resource, container in found:
        env = dict(container.env.values)
        for service, variables in ROOT_CREDENTIALS.items():
            for variable in variables:
                if variable in env and container.service != service:
                    report(f"{container.name or resource.name} carries {variable}, {service}'s root credential, "
                           f"which only the {service} container may hold.", resource.urn)
        for name, value in env.items():
            if container.service in ROOT_CREDENTIALS and name in ROOT_CREDENTIALS[container.service]:
                continue
            for secret in [value, *_secret_values(name, value)]:
                owner = secrets.get(secret)
                if owner and owner[0] != container.service:
                    report(f"{container.name or resource.name}'s {name} holds the value of {owner[0]}'s {owner[1]}: "
                           f"log in as the service's own user instead.", resource.urn)
                    break
        for name, user in _login_users(env):
            service = logins.get(user)
            if service and service != container.service and name != _LOGIN_NAMES.get(container.service):
                report(f"{container.name or resource.name}'s {name} logs in to {service} as its root user "
                       f"{user!r}: give it its own user.", resource.urn)


RULES = [
    Rule(
        name="service-authentication",
        concern="credentials",
        description="Redis requires a password, Qdrant an API key, MinIO non-default root credentials "
                    "(and Postgres a password, never trust auth).",
        remediation="Pass the generated secrets of components/secrets.py to the service (Redis: "
                    "--requirepass \"$REDIS_PASSWORD\"; Qdrant: QDRANT__SERVICE__API_KEY; MinIO: "
                    "MINIO_ROOT_USER/MINIO_ROOT_PASSWORD).",
        severity=Severity.CRITICAL,
        levels=Levels(dev=MANDATORY, stage=MANDATORY, prod=MANDATORY,
                      why="the program generates these in every environment; a gap anywhere is a regression."),
        check=service_authentication,
    ),
    Rule(
        name="secret-env-literals",
        concern="credentials",
        description="Secret-looking env vars (*_PASSWORD, *_SECRET*, *_KEY, *TOKEN*, and the password of "
                    "any URL value) hold neither a value written in plain stack config nor a well-known placeholder. "
                    "A heuristic: the pack sees secrets decrypted, so it compares values with the stack "
                    "config under keys not named like secrets. It cannot tell whether a value is marked "
                    "secret in state, catch a literal written in the program's code, or judge values "
                    "unknown until deploy (generated ones).",
        remediation="Generate the value (components/secrets.py) or set it with `pulumi config set --secret "
                    "<name>` and read it with config.get_secret/require_secret.",
        severity=Severity.HIGH,
        levels=Levels(dev=ADVISORY, stage=MANDATORY, prod=MANDATORY,
                      why="dev keys are throwaway, but a plaintext key in a committed file still deserves a note."),
        check=secret_env_literals,
    ),
    Rule(
        name="root-credentials-owned",
        concern="credentials",
        description="A service's root credential (PostgreSQL's superuser password, MinIO's root user and "
                    "password, the Redis admin user's password) is in that service's container only: no "
                    "other container carries the variable, its value, or the root login name in a URL or "
                    "user variable.",
        remediation="Give the consumer its own user: a database role (components/data/scripts/"
                    "postgres-roles.sh), a MinIO user and policy (components/data/minio_policies.py), a "
                    "Redis ACL user (components/data/redis_acl.py).",
        severity=Severity.CRITICAL,
        levels=Levels(dev=MANDATORY, stage=MANDATORY, prod=MANDATORY,
                      why="the program gives every consumer its own user in every environment; a root "
                          "credential outside its service is a regression anywhere."),
        check=root_credentials_owned,
        stack_wide=True,
    ),
]
