"""Names and labels tie every resource to its environment: two stacks on one
host (or one bucket store) must never touch each other's data."""

from __future__ import annotations

import re

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity

from shia_policies.resources import (
    APP_SERVICES, COMMANDS, CONTAINER, LABEL_PREFIX, NETWORK, STACK, VOLUME, Container, label_map,
)
from shia_policies.spec import MANDATORY, Check, Levels, Rule
from shia_policies.stack import ENVIRONMENTS

S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
# The naming guide: `<env>_` for data inside a service, `<env>-` for everything
# Docker or S3 names (bucket names forbid `_`); S3 also takes `<project>-<env>-`.
PREFIXED_ENV_VARS = {"QDRANT_COLLECTION": "_", "POSTGRES_DB": "_", "MINIO_BUCKET": "-"}


def _expect(report: ReportViolation, what: str, name: str, prefix: str) -> None:
    if not name.startswith(prefix):
        report(f"{what} {name!r} does not start with {prefix!r}.")


def _minio_buckets(command: str) -> list[str]:
    """Buckets an `mc mb ALIAS/BUCKET ...` step creates."""
    buckets = []
    for arguments in re.findall(r"\bmc mb\b([^&;|]*)", command):
        buckets += [token.strip("'\"").split("/", 1)[1] for token in arguments.split()
                    if "/" in token and not token.startswith("-")]
    return buckets


def environment_prefixed_names(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    env, kind, props = c.env, args.resource_type, args.props
    if kind == CONTAINER:
        container = Container(props)
        _expect(report, "container", container.name, f"{env}-")
        for key, separator in PREFIXED_ENV_VARS.items():
            value = container.env.get(key)
            if value is not None:
                _expect(report, key, value, f"{env}{separator}")
    elif kind == VOLUME:
        _expect(report, "volume", props.get("name") or args.name, f"{env}_")
    elif kind == NETWORK:
        _expect(report, "network", props.get("name") or args.name, f"{env}-")
    elif kind in S3_BUCKETS:
        # S3 names are global across accounts, so the project may come first.
        name = props.get("bucket") or props.get("bucketPrefix") or args.name
        if not name.startswith(f"{c.stack.project}-{env}-"):
            _expect(report, "bucket", name, f"{env}-")
    elif kind in COMMANDS:
        for bucket in _minio_buckets(props.get("create") or ""):
            _expect(report, "bucket", bucket, f"{env}-")


def environment_matches_stack(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    env, kind = c.env, args.resource_type
    if kind == STACK:
        _check_stack_identity(c, report)
        return
    if kind in (CONTAINER, VOLUME, NETWORK):
        label = label_map(args.props).get(f"{LABEL_PREFIX}.environment")
        if label is not None and label != env:
            report(f"label {LABEL_PREFIX}.environment={label} on a {env} stack.")
        elif label is None and kind == CONTAINER:
            report(f"no {LABEL_PREFIX}.environment label.")
    container = Container.of(kind, args.props)
    if container is None or container.service not in APP_SERVICES:
        return
    value = container.env.get("ENVIRONMENT")
    if value is not None and value != env:
        report(f"ENVIRONMENT={value} on a {env} stack.")
    container.env.settle("ENVIRONMENT")
    if value is None:
        report("ENVIRONMENT is not set.")


def _check_stack_identity(c: Check, report: ReportViolation) -> None:
    stack, configured = c.stack.stack, c.stack.configured_environment
    if configured is None:
        return
    if configured not in ENVIRONMENTS:
        report(f"environment {configured!r} is not one of {', '.join(ENVIRONMENTS)}; judged as {c.env}.")
    elif stack != configured and not stack.startswith(f"{configured}-"):
        report(f"stack {stack!r} is configured as {configured!r}: name it '{configured}' or '{configured}-...'.")


RULES = [
    Rule(
        name="environment-prefixed-names",
        concern="naming",
        description="Containers, networks and buckets are named '<env>-...' (S3 buckets may be "
                    "'<project>-<env>-...', their names being global); volumes, the database and the "
                    "Qdrant collection '<env>_...'.",
        remediation="Name resources with settings/naming.py's Naming helper instead of literal names.",
        severity=Severity.HIGH,
        levels=Levels(dev=MANDATORY, stage=MANDATORY, prod=MANDATORY,
                      why="a dev stack can share a Docker host or a bucket store; a collision loses data anywhere."),
        check=environment_prefixed_names,
    ),
    Rule(
        name="environment-matches-stack",
        concern="naming",
        description="What the resources say (ENVIRONMENT, environment labels) and the stack config's "
                    "environment match the stack.",
        remediation="Set `environment` in Pulumi.<stack>.yaml to the stack's environment and build every "
                    "container's environment from it.",
        severity=Severity.HIGH,
        levels=Levels(dev=MANDATORY, stage=MANDATORY, prod=MANDATORY,
                      why="a mismatch means prod settings on a dev host or the reverse; never intended."),
        check=environment_matches_stack,
    ),
]
