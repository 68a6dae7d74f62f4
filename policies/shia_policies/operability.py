"""Containers that keep themselves alive and cannot starve the host."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity

from shia_policies.resources import Container, known_items
from shia_policies.spec import ADVISORY, DISABLED, MANDATORY, Check, Levels, Rule

RESTARTING_POLICIES = ("always", "unless-stopped", "on-failure")
# Drivers that rotate by themselves or hand logs to something that does.
SELF_ROTATING_LOG_DRIVERS = ("local", "journald", "syslog", "fluentd", "gelf", "awslogs")
JSON_FILE_ROTATION = ("max-size", "max-file")


def healthcheck_and_restart(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = Container.of(args.resource_type, args.props)
    if container is None or not container.long_running:
        return
    restart = container.props.get("restart")
    if restart not in RESTARTING_POLICIES:
        report(f"restart={restart or 'no'}: a crashed or rebooted container stays down "
               f"(use one of {', '.join(RESTARTING_POLICIES)}).")
    tests, _ = known_items((container.props.get("healthcheck") or {}).get("tests"))
    if not tests or tests[0] == "NONE":
        report("no healthcheck: Docker cannot tell a hung service from a healthy one, and "
               "dependants start before it is ready.")


def memory_and_log_limits(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = Container.of(args.resource_type, args.props)
    if container is None:
        return
    memory = container.props.get("memory")
    if not memory or memory <= 0:
        report("no memory limit: one leaking service can take the whole host down.")
    driver = container.props.get("logDriver")
    options = container.props.get("logOpts") or {}
    if driver == "json-file":
        missing = [o for o in JSON_FILE_ROTATION if not options.get(o)]
        if missing:
            report(f"json-file logs without {' and '.join(missing)}: they grow until the disk is full.")
    elif driver not in SELF_ROTATING_LOG_DRIVERS:
        report(f"log driver {driver or '<daemon default>'!s} with no rotation this policy can see: "
               "use json-file with max-size and max-file.")


RULES = [
    Rule(
        name="healthcheck-and-restart",
        concern="operability",
        description="Every long-running container has a healthcheck and a restart policy.",
        remediation="Build containers with components/host/containers.py's hardened_container, which sets "
                    "restart=unless-stopped, and give it a Healthcheck.",
        severity=Severity.MEDIUM,
        levels=Levels(dev=ADVISORY, stage=MANDATORY, prod=MANDATORY,
                      why="on dev a missing healthcheck costs a developer a restart, not an outage."),
        check=healthcheck_and_restart,
    ),
    Rule(
        name="memory-and-log-limits",
        concern="operability",
        description="Every prod container has a memory limit and rotated logs.",
        remediation="Set memoryMb.<service> and keep log_driver json-file with max-size/max-file "
                    "(components/host/containers.py's LOG_OPTS).",
        severity=Severity.MEDIUM,
        levels=Levels(dev=DISABLED, stage=ADVISORY, prod=MANDATORY,
                      why="dev and stage hosts are rebuilt freely; stage shows the problem before prod."),
        check=memory_and_log_limits,
    ),
]
