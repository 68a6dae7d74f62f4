"""The router: HTTPS in prod, and blue/green traffic on exactly one slot.

Both read the nginx config the router step writes (its stdin) next to the
containers it points at, so they are stack policies.
"""

from __future__ import annotations

import re

from pulumi_policy import ReportViolation, Severity, StackValidationArgs

from shia_policies.resources import RouterConfig, containers, known_items, listens
from shia_policies.spec import ADVISORY, DISABLED, MANDATORY, Check, Levels, Rule, Threshold

HTTP_PORT, HTTPS_PORT = 80, 443
_REDIRECT = re.compile(r"\breturn\s+30[18]\s+https://")


def _router_steps(args: StackValidationArgs):
    return [r for r in args.resources if RouterConfig.is_router_step(r.resource_type, r.name)]


def router_tls(c: Check, args: StackValidationArgs, report: ReportViolation) -> None:
    steps = _router_steps(args)
    if not steps:
        report("no router config step (`<env>-router-config`) in the stack.")
    nginx = [(r, ct) for r, ct in containers(args.resources) if ct.service == "nginx"]
    for step in steps:
        config = RouterConfig(step.props.get("stdin") or "")
        tls_blocks = [b for b in config.server_blocks
                      if any(port == HTTPS_PORT and "ssl" in flags.split() for port, flags in listens(b))]
        if not tls_blocks:
            report("the router serves no HTTPS: no `listen 443 ssl`.", step.urn)
        certificates = []
        for block in tls_blocks:
            certificate = re.search(r"^\s*ssl_certificate\s+([^;\s]+)", block, re.M)
            if certificate is None or not re.search(r"^\s*ssl_certificate_key\s", block, re.M):
                report("an HTTPS server has no ssl_certificate / ssl_certificate_key.", step.urn)
            else:
                certificates.append(certificate[1])
        plain = [b for b in config.server_blocks if any(port == HTTP_PORT for port, _ in listens(b))]
        if not plain or not all(_REDIRECT.search(b) for b in plain):
            report("port 80 does not redirect to https:// (return 301).", step.urn)
        for resource, container in nginx:
            _check_certificates_mounted(certificates, resource, container, report)
    for resource, container in nginx:
        if not any(int(p.get("internal", 0)) == HTTPS_PORT for p in container.ports):
            report("nginx does not publish port 443.", resource.urn)


def _check_certificates_mounted(certificates, resource, container, report: ReportViolation) -> None:
    mounted = [v["containerPath"].rstrip("/") + "/" for v in known_items(container.props.get("volumes"))[0]
               if v.get("hostPath") and v.get("containerPath")]
    for certificate in certificates:
        if not any(certificate.startswith(path) for path in mounted):
            report(f"certificate {certificate} is on no host directory mounted into nginx.", resource.urn)


def blue_green_slots(c: Check, args: StackValidationArgs, report: ReportViolation) -> None:
    steps = _router_steps(args)
    if len(steps) != 1:
        report(f"{len(steps)} router config steps: exactly one router decides the active slot.")
        if not steps:
            return
    step = steps[0]
    config = RouterConfig(step.props.get("stdin") or "")
    if len(config.active_slots) != 1:
        report(f"the router config names {len(config.active_slots)} active slots "
               f"({', '.join(config.active_slots) or 'none'}); it must name exactly one.", step.urn)
        return
    active = config.active_slots[0]
    everything = containers(args.resources)
    apps = [(r, ct) for r, ct in everything if ct.service == "app"]
    active_apps = {ct.name: ct for _, ct in apps if ct.slot == active}
    if not active_apps:
        deployed = sorted({ct.slot or "<no slot label>" for _, ct in apps})
        report(f"active slot {active!r} has no app containers (deployed slots: {', '.join(deployed) or 'none'}).",
               step.urn)
        return
    if not config.upstream_servers:
        report("the router's upstream lists no server.", step.urn)
    for server in config.upstream_servers:
        if server.rsplit(":", 1)[0] not in active_apps:
            report(f"upstream server {server} is not an app container of the active slot {active!r}.", step.urn)
    minimum = c.settings["minActiveReplicas"]
    if len(active_apps) < minimum:
        report(f"the active slot {active!r} has {len(active_apps)} replica(s); {c.env} needs at least {minimum}.",
               step.urn)
    images = {ct.image for ct in active_apps.values()}
    if len(images) > 1:
        report(f"the active slot's replicas run different images: {', '.join(sorted(images))}.", step.urn)
    for resource, container in everything:
        if container.service not in ("worker", "flower"):
            continue
        if container.slot != active:
            report(f"{container.service} is on slot {container.slot!r}; the active slot is {active!r}.", resource.urn)
        if container.image not in images:
            report(f"{container.service} runs {container.image}; the active slot runs "
                   f"{', '.join(sorted(images))}.", resource.urn)


RULES = [
    Rule(
        name="router-tls",
        concern="routing",
        description="The prod router serves 443 with a certificate (mounted into nginx) and redirects 80 to https.",
        remediation="Set tls.enabled true and a domain in Pulumi.<stack>.yaml, with certificates under "
                    "tls.certificateDir on the host (certbot's live/<domain>/ layout).",
        severity=Severity.HIGH,
        stack_wide=True,
        levels=Levels(dev=DISABLED, stage=ADVISORY, prod=MANDATORY,
                      why="dev serves plain HTTP on localhost; stage may drop TLS for a while to debug certbot."),
        check=router_tls,
    ),
    Rule(
        name="blue-green-slots",
        concern="routing",
        description="Exactly one active slot: the router's upstream points only at app containers of that "
                    "slot, which has enough replicas (2 in prod), and worker and Flower run its image.",
        remediation="Release by setting the idle slot's image, then switch activeSlot; keep "
                    "slots.<active>.replicas >= 2 in prod. Worker and Flower follow activeSlot.",
        severity=Severity.HIGH,
        stack_wide=True,
        levels=Levels(dev=MANDATORY, stage=MANDATORY, prod=MANDATORY,
                      why="a router pointing at the wrong slot is a broken deploy in any environment."),
        check=blue_green_slots,
        thresholds={
            "minActiveReplicas": Threshold("Fewest app replicas in the active slot.",
                                           {"type": "integer", "minimum": 1}),
        },
    ),
]
