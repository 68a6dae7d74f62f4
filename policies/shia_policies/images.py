"""Image references: pinned everywhere it matters, and the app's from our registry in prod."""

from __future__ import annotations

import re

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity

from shia_policies.resources import APP_SERVICES, REMOTE_IMAGE, Container
from shia_policies.spec import ADVISORY, MANDATORY, Check, Levels, Rule, Threshold

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# The tag sits on the last path component; a registry's `:port` does not count.
_TAG = re.compile(r":([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")


def is_pinned(ref: str) -> bool:
    """A digest, or a tag other than `latest`."""
    if _DIGEST.search(ref):
        return True
    tag = _TAG.search(ref.rsplit("/", 1)[-1])
    return tag is not None and tag[1] != "latest"


def from_registry(ref: str, registries: list[str]) -> bool:
    return any(ref.startswith(registry.rstrip("/") + "/") for registry in registries)


def images_pinned(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == REMOTE_IMAGE:
        ref = args.props.get("name") or ""
        if not is_pinned(ref):
            report(f"image {ref!r} is not pinned: add a version tag or a digest.")
        return
    container = Container.of(args.resource_type, args.props)
    if container is None:
        return
    if not is_pinned(container.image):
        report(f"image {container.image!r} is not pinned: add a version tag or a digest.")
    registries = list(c.settings["allowedRegistries"])
    if c.prod and container.service in APP_SERVICES and not from_registry(container.image, registries):
        report(f"{container.service} image {container.image!r} is not from an allowed registry "
               f"({', '.join(registries)}).")


RULES = [
    Rule(
        name="images-pinned",
        concern="images",
        description="Every image is pinned (a tag other than latest, or a digest); "
                    "prod app, worker and Flower images come from an allowed registry.",
        remediation="Pin the image in the stack config (slots.<slot>.image, images.<service>) as name:1.2.3 "
                    "or name@sha256:...; publish app images to the allowed registry.",
        severity=Severity.HIGH,
        levels=Levels(dev=ADVISORY, stage=MANDATORY, prod=MANDATORY,
                      why="dev may try an unreleased tag for a while; stage must run what prod will run."),
        check=images_pinned,
        thresholds={
            "allowedRegistries": Threshold(
                "Registries (host/namespace) prod app images may come from.",
                {"type": "array", "items": {"type": "string"}, "minItems": 1}),
        },
    ),
]
