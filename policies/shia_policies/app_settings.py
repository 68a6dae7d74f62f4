"""The app's own settings, read where they take effect: the environment and
command line of the containers that run the app image (app, worker, Flower),
and the router's rendered config for the edge rate limit."""

from __future__ import annotations

import re
from typing import Optional

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity

from shia_policies.resources import APP_SERVICES, Container, RouterConfig
from shia_policies.spec import ADVISORY, DISABLED, MANDATORY, Check, Levels, Rule, Threshold

FALSY = ("false", "0", "no", "off")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
# The most verbose level each environment may log at.
MOST_VERBOSE = {"dev": "TRACE", "stage": "INFO", "prod": "WARNING"}
# celery `--loglevel=info` / `-l info`, uvicorn `--log-level info`.
_LEVEL_FLAG = re.compile(r"(?:--log-?level[= ]|(?<!\S)-l )['\"]?([A-Za-z]+)")


def _app_container(args: ResourceValidationArgs, services: tuple[str, ...] = APP_SERVICES) -> Optional[Container]:
    container = Container.of(args.resource_type, args.props)
    return container if container is not None and container.service in services else None


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def debug_disabled(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = _app_container(args)
    if container is None:
        return
    debug = container.env.get("DEBUG")
    if debug is not None and debug.strip().lower() not in FALSY:
        report(f"DEBUG={debug} in {c.env}: debug pages leak settings, SQL and stack traces to clients.")
    container.env.settle("DEBUG")
    if debug is None:
        report("DEBUG is not set: set DEBUG=false explicitly (the app's default is invisible to this policy).")


def _level(name: str) -> Optional[str]:
    upper = LOG_LEVEL_ALIASES.get(name.upper(), name.upper())
    return upper if upper in LOG_LEVELS else None


def log_level_strict(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = _app_container(args)
    if container is None:
        return
    floor = LOG_LEVELS.index(MOST_VERBOSE[c.env])

    def too_verbose(value: str) -> bool:
        level = _level(value)
        return level is None or LOG_LEVELS.index(level) < floor

    # A command-line level overrides LOG_LEVEL for that process (celery's --loglevel does).
    for flag in _LEVEL_FLAG.findall(" ".join(container.command)):
        if too_verbose(flag):
            report(f"the command sets log level {flag!r}; {c.env} allows {MOST_VERBOSE[c.env]} or stricter.")
    level = container.env.get("LOG_LEVEL")
    if level is not None and too_verbose(level):
        report(f"LOG_LEVEL={level}; {c.env} allows {MOST_VERBOSE[c.env]} or stricter.")
    container.env.settle("LOG_LEVEL")
    if level is None:
        report("LOG_LEVEL is not set.")


def cors_and_allowed_hosts(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = _app_container(args, services=("app",))
    if container is None:
        return
    origins = container.env.get("CORS_ORIGINS")
    if origins is not None and any("*" in origin for origin in _csv(origins)):
        report(f"CORS_ORIGINS={origins}: a wildcard lets any site call the API with the user's browser.")
    hosts = container.env.get("ALLOWED_HOSTS")
    if hosts is not None and any("*" in host for host in _csv(hosts)):
        report(f"ALLOWED_HOSTS={hosts}: a wildcard accepts any Host header.")
    container.env.settle("ALLOWED_HOSTS")
    if not _csv(hosts or ""):
        report("ALLOWED_HOSTS is empty: list the public host names.")


def rate_limit_ceiling(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    ceilings = {"RATE_LIMIT_PER_MINUTE": c.settings["maxPerMinute"],
                "RATE_LIMIT_PER_HOUR": c.settings["maxPerHour"]}
    if RouterConfig.is_router_step(args.resource_type, args.name):
        _check_router_rate(RouterConfig.from_bundle(args.props.get("stdin") or ""), ceilings["RATE_LIMIT_PER_MINUTE"], report)
        return
    container = _app_container(args, services=("app",))
    if container is None:
        return
    for key, ceiling in ceilings.items():
        value = container.env.get(key)
        if value is not None and not (value.isdigit() and 0 < int(value) <= ceiling):
            report(f"{key}={value}; the ceiling in {c.env} is {ceiling}.")
    container.env.settle(*ceilings)
    for key in ceilings:
        if container.env.get(key) is None:
            report(f"{key} is not set: the app would not limit requests.")


def _check_router_rate(config: RouterConfig, ceiling: int, report: ReportViolation) -> None:
    rate = config.rate_per_minute
    if rate is None:
        report("the router config has no limit_req_zone rate.")
    elif rate > ceiling:
        report(f"the router allows {rate:g} requests per minute per client; the ceiling is {ceiling}.")
    if not config.limits_requests:
        report("no location applies the rate limit (limit_req).")


RULES = [
    Rule(
        name="debug-disabled",
        concern="app-settings",
        description="DEBUG is false in the app, worker and Flower containers of stage and prod.",
        remediation="Set app.debug to false in the stack config (Pulumi.<stack>.yaml), or remove the override.",
        severity=Severity.HIGH,
        levels=Levels(dev=DISABLED, stage=MANDATORY, prod=MANDATORY,
                      why="dev runs with debug on by design; stage rehearses prod, so it is held to the same bar."),
        check=debug_disabled,
    ),
    Rule(
        name="log-level-strict",
        concern="app-settings",
        description="Log level is WARNING or stricter in prod (INFO or stricter in stage), "
                    "both LOG_LEVEL and any log level on the command line.",
        remediation="Set app.logLevel to WARNING (or stricter) for prod; a process given --loglevel/--log-level "
                    "on its command line must get the same level.",
        severity=Severity.MEDIUM,
        levels=Levels(dev=DISABLED, stage=ADVISORY, prod=MANDATORY,
                      why="dev logs at DEBUG by design; a stage debugging session may raise verbosity for a while."),
        check=log_level_strict,
    ),
    Rule(
        name="cors-and-allowed-hosts",
        concern="app-settings",
        description="CORS origins are not a wildcard and ALLOWED_HOSTS lists the public host names.",
        remediation="Set app.corsOrigins to the site's https origins and app.allowedHosts to its host names "
                    "in Pulumi.<stack>.yaml.",
        severity=Severity.HIGH,
        levels=Levels(dev=DISABLED, stage=MANDATORY, prod=MANDATORY,
                      why="dev serves localhost only; stage is public like prod, so a wildcard there is as exposed."),
        check=cors_and_allowed_hosts,
    ),
    Rule(
        name="rate-limit-ceiling",
        concern="app-settings",
        description="Per-client rate limits (app and router) are set and within the configured ceiling.",
        remediation="Lower app.rateLimitPerMinute / app.rateLimitPerHour in the stack config, or raise the "
                    "ceiling in the policy config after review.",
        severity=Severity.MEDIUM,
        levels=Levels(dev=DISABLED, stage=ADVISORY, prod=MANDATORY,
                      why="dev is permissive for load tests; stage runs twice prod's limits so QA scripts pass."),
        check=rate_limit_ceiling,
        thresholds={
            # policies/config/<env>.json holds the operations guide's figures (prod: 60/min, 1000/h).
            "maxPerMinute": Threshold("Highest allowed requests per minute per client.",
                                      {"type": "integer", "minimum": 1}),
            "maxPerHour": Threshold("Highest allowed requests per hour per client.",
                                    {"type": "integer", "minimum": 1}),
        },
    ),
]
