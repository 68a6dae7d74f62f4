"""What the Docker host publishes: data services never, and in prod only nginx on 80/443."""

from __future__ import annotations

import re
from typing import Any, Mapping

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity

from shia_policies.resources import DATA_SERVICES, Container
from shia_policies.spec import ADVISORY, MANDATORY, Check, Levels, Rule

PUBLIC_PORTS = (80, 443)
_AUTH_FLAG = re.compile(r"--(?:basic[_-]auth|auth[_-]provider)=\S+")


def _describe(port: Mapping[str, Any]) -> str:
    external = port.get("external")
    host_port = str(int(external)) if external is not None else "<random>"
    return f"{port.get('ip') or '0.0.0.0'}:{host_port}->{int(port.get('internal', 0))}"


def published_ports(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = Container.of(args.resource_type, args.props)
    if container is None or not container.publishes:
        return
    published = ", ".join(_describe(p) for p in container.ports) or "every exposed port (publishAllPorts)"
    if container.service in DATA_SERVICES:
        report(f"{container.service} publishes {published}: data services are reached over the "
               "internal backend network only.")
    elif c.prod and container.service != "nginx":
        report(f"{container.service} publishes {published}: in prod only nginx publishes ports.")
    elif c.prod:
        outside = [p for p in container.ports if p.get("external") is None or int(p["external"]) not in PUBLIC_PORTS]
        if outside or container.props.get("publishAllPorts"):
            shown = ", ".join(_describe(p) for p in outside) or "every exposed port (publishAllPorts)"
            report(f"nginx publishes {shown}: in prod only host ports 80 and 443.")


def _basic_auth_complete(value: str) -> bool:
    pairs = [pair.partition(":") for pair in value.split(",")]
    return bool(pairs) and all(user and password for user, _, password in pairs)


def flower_behind_auth(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = Container.of(args.resource_type, args.props)
    if container is None or container.service != "flower" or not container.publishes:
        return
    if _AUTH_FLAG.search(" ".join(container.command)) or container.env.get("FLOWER_AUTH_PROVIDER"):
        return
    basic_auth = container.env.get("FLOWER_BASIC_AUTH")
    if basic_auth is not None:
        if not _basic_auth_complete(basic_auth):
            report("FLOWER_BASIC_AUTH needs user:password pairs with both parts set.")
        return
    container.env.settle("FLOWER_BASIC_AUTH")
    report("Flower is published without authentication: anyone reaching the port can inspect and "
           "revoke tasks.")


RULES = [
    Rule(
        name="published-ports",
        concern="exposure",
        description="Postgres, Redis, Qdrant and MinIO publish no host port; in prod only nginx "
                    "publishes, and only host ports 80 and 443.",
        remediation="Remove the `ports` of the container (services reach each other by network alias); "
                    "for prod set httpPort 80 / httpsPort 443 and publishFlower false.",
        severity=Severity.CRITICAL,
        levels=Levels(dev=ADVISORY, stage=MANDATORY, prod=MANDATORY,
                      why="on a dev laptop a data port on localhost is a deliberate convenience; "
                          "stage is on the internet like prod."),
        check=published_ports,
    ),
    Rule(
        name="flower-behind-auth",
        concern="exposure",
        description="Flower is not published, or only behind authentication.",
        remediation="Keep publishFlower false, or give Flower FLOWER_BASIC_AUTH=user:password "
                    "(components/app/worker.py does) or an --auth_provider.",
        severity=Severity.HIGH,
        levels=Levels(dev=MANDATORY, stage=MANDATORY, prod=MANDATORY,
                      why="Flower can revoke and inspect tasks with their arguments; no environment may "
                          "expose it openly, dev included (it publishes Flower on purpose, with auth)."),
        check=flower_behind_auth,
    ),
]
