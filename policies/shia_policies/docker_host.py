"""How Pulumi reaches the Docker daemon: never over plain, unauthenticated TCP."""

from __future__ import annotations

from typing import Optional

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity

from shia_policies.resources import DOCKER_PROVIDER, LOCAL_COMMAND
from shia_policies.spec import ADVISORY, MANDATORY, Check, Levels, Rule

SAFE_SCHEMES = ("unix://", "ssh://", "npipe://")
TLS_INPUTS = ("caMaterial", "certMaterial", "keyMaterial", "certPath")


def _transport_problem(host: str, has_tls: bool) -> Optional[str]:
    if host.startswith(SAFE_SCHEMES) or has_tls:
        return None
    if host.startswith(("tcp://", "http://")):
        return f"{host} is plain TCP: anyone who reaches the port is root on the host"
    return f"{host!r} is not a unix://, ssh:// or TLS-protected tcp:// address"


def docker_host_transport(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == DOCKER_PROVIDER:
        host = args.props.get("host")
        if not host:
            # Then the engine's own DOCKER_HOST decides, which no review sees.
            if c.env != "dev":
                report(f"the docker provider has no host: set dockerHost for {c.env}.")
            return
        problem = _transport_problem(host, any(args.props.get(key) for key in TLS_INPUTS))
    elif args.resource_type == LOCAL_COMMAND:
        host = (args.props.get("environment") or {}).get("DOCKER_HOST")
        problem = _transport_problem(host, False) if host else None
    else:
        return
    if problem:
        report(f"{problem}; use ssh://user@host (or tcp:// with TLS client certificates).")


RULES = [
    Rule(
        name="docker-host-transport",
        concern="docker-host",
        description="The Docker daemon of stage and prod is reached over unix:// or ssh://, never plain tcp://.",
        remediation="Set dockerHost to ssh://deploy@<host> in Pulumi.<stack>.yaml (settings/load.py "
                    "accepts unix:// and ssh://).",
        severity=Severity.CRITICAL,
        levels=Levels(dev=ADVISORY, stage=MANDATORY, prod=MANDATORY,
                      why="a dev daemon on tcp://localhost is reachable only from the machine, "
                          "yet still worth a note."),
        check=docker_host_transport,
    ),
]
