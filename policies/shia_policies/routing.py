"""The router: HTTPS in prod, and blue/green traffic on exactly one slot.

Both read the nginx config the router config step installs (its stdin, a
bundle of the router's files) and the slot the switch step writes (its stdin)
next to the containers they route to, so they are stack policies.
"""

from __future__ import annotations

import re

from pulumi_policy import ReportViolation, Severity, StackValidationArgs

from shia_policies.resources import SLOT_NAMES, RouterConfig, containers, known_items, listens
from shia_policies.spec import ADVISORY, DISABLED, MANDATORY, Check, Levels, Rule, Threshold

HTTP_PORT, HTTPS_PORT = 80, 443
_REDIRECT = re.compile(r"\breturn\s+30[18]\s+https://")


def _router_steps(args: StackValidationArgs):
    return [r for r in args.resources if RouterConfig.is_router_step(r.resource_type, r.name)]


def _switch_steps(args: StackValidationArgs):
    return [r for r in args.resources if RouterConfig.is_switch_step(r.resource_type, r.name)]


def _aliases(container) -> set[str]:
    return {alias for network in known_items(container.props.get("networksAdvanced"))[0]
            for alias in (network.get("aliases") or [])}


def router_tls(c: Check, args: StackValidationArgs, report: ReportViolation) -> None:
    steps = _router_steps(args)
    if not steps:
        report("no router config step (`<env>-router-config`) in the stack.")
    nginx = [(r, ct) for r, ct in containers(args.resources) if ct.service == "nginx"]
    for step in steps:
        config = RouterConfig.from_bundle(step.props.get("stdin") or "")
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
    steps, switches = _router_steps(args), _switch_steps(args)
    # One router decides: on one host one config and one switch step; on a
    # swarm one of each per edge node, all installing the same config and slot.
    if len(steps) != len(switches) or not steps or len({s.props.get("stdin") for s in steps}) != 1 or len(
            {(s.props.get("stdin") or "").strip() for s in switches}) != 1:
        report(f"{len(steps)} router config steps and {len(switches)} switch steps: exactly one router "
               "decides the active slot (one config and one slot, on every edge node alike).")
        if not steps or not switches:
            return
    step, switch = steps[0], switches[0]
    active = (switch.props.get("stdin") or "").strip()
    if active not in SLOT_NAMES:
        report(f"the switch step names {active!r}; it must name one slot ({', '.join(SLOT_NAMES)}).", switch.urn)
        return
    # nginx finds the slot's replicas by DNS: `app-<slot>`, the alias every replica carries.
    config = RouterConfig.from_bundle(step.props.get("stdin") or "")
    if config.proxied_names != ["app-$app_slot"]:
        report(f"the router proxies to {', '.join(config.proxied_names) or 'nothing'}; it must proxy to the "
               "active slot's name only (app-$app_slot).", step.urn)
    everything = containers(args.resources)
    for resource, container in everything:
        for alias in _aliases(container):
            slot = alias.removeprefix("app-")
            if alias.startswith("app-") and slot in SLOT_NAMES and container.slot != slot:
                report(f"{container.name} answers to {alias} but is on slot {container.slot!r}: the router "
                       f"would send {slot}'s traffic to it.", resource.urn)
    apps = [(r, ct) for r, ct in everything if ct.service == "app"]
    active_apps = {ct.name: ct for _, ct in apps if ct.slot == active and f"app-{active}" in _aliases(ct)}
    if not active_apps:
        deployed = sorted({ct.slot or "<no slot label>" for _, ct in apps})
        report(f"active slot {active!r} has no app containers answering app-{active} "
               f"(deployed slots: {', '.join(deployed) or 'none'}).", switch.urn)
        return
    minimum = c.settings["minActiveReplicas"]
    # A container is one replica; a slot's Swarm service runs its replicas as tasks.
    running = sum(ct.replicas or 0 for ct in active_apps.values())
    if running < minimum:
        report(f"the active slot {active!r} has {running} replica(s); {c.env} needs at least {minimum}.",
               switch.urn)
    images = {ct.image for ct in active_apps.values()}
    if len(images) > 1:
        report(f"the active slot's replicas run different images: {', '.join(sorted(images))}.", switch.urn)
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
        description="Exactly one active slot: the router sends traffic only to the name that slot's app "
                    "containers answer to, no other container answers to it, the slot has enough replicas "
                    "(2 in prod), and worker and Flower run its image.",
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
