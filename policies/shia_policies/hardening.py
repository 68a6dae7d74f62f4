"""Nothing a container runs may reach the host: no privileges, no host
namespaces, no Docker socket or system directory, and no privilege gain."""

from __future__ import annotations

import posixpath
from typing import Iterator

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity

from shia_policies.resources import Container, known_items
from shia_policies.spec import MANDATORY, Check, Levels, Rule

HOST_NAMESPACES = ("networkMode", "pidMode", "ipcMode", "usernsMode")
# Capabilities that amount to root on the host.
DANGEROUS_CAPABILITIES = ("ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "NET_ADMIN", "DAC_READ_SEARCH")
# A mount is sensitive when it is one of these, lies inside one, or contains one
# (mounting `/var` hands over `/var/run/docker.sock`).
SENSITIVE_HOST_PATHS = (
    "/var/run/docker.sock", "/run/docker.sock", "/var/lib/docker", "/etc/docker",
    "/proc", "/sys", "/dev", "/boot", "/root", "/home",
    "/etc/shadow", "/etc/sudoers", "/etc/ssh", "/etc/pam.d",
    "/usr", "/bin", "/sbin", "/lib",
)
NO_NEW_PRIVILEGES = ("no-new-privileges", "no-new-privileges:true")


def is_sensitive(host_path: str) -> bool:
    path = posixpath.normpath(host_path)
    return any(path == s or path.startswith(s + "/") or s.startswith(path.rstrip("/") + "/")
               for s in SENSITIVE_HOST_PATHS)


def _host_paths(container: Container) -> Iterator[str]:
    for volume in known_items(container.props.get("volumes"))[0]:
        if volume.get("hostPath"):
            yield volume["hostPath"]
    for mount in known_items(container.props.get("mounts"))[0]:
        if mount.get("type") == "bind" and mount.get("source"):
            yield mount["source"]


def container_hardening(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = Container.of(args.resource_type, args.props)
    if container is None:
        return
    props = container.props
    if props.get("privileged"):
        report("privileged=true: the container is root on the host.")
    for mode in HOST_NAMESPACES:
        if props.get(mode) == "host":
            report(f"{mode}=host: the container shares the host's namespace.")
    added = known_items((props.get("capabilities") or {}).get("adds"))[0]
    for capability in added:
        if capability.upper().removeprefix("CAP_") in DANGEROUS_CAPABILITIES:
            report(f"capability {capability} added: it amounts to root on the host.")
    if known_items(props.get("devices"))[0]:
        report("host devices are mapped into the container.")
    for path in _host_paths(container):
        if is_sensitive(path):
            report(f"host path {path!r} is mounted: it exposes the Docker socket or the host system.")
    options = known_items(props.get("securityOpts"))[0]
    if not any(option in NO_NEW_PRIVILEGES for option in options):
        report("securityOpts lacks no-new-privileges: a setuid binary could raise a process's privileges.")


RULES = [
    Rule(
        name="container-hardening",
        concern="hardening",
        description="No privileged container, no host network/PID/IPC/user namespace, no Docker socket or "
                    "system path mounted, no-new-privileges on every container.",
        remediation="Build containers with components/host/containers.py's hardened_container; mount only "
                    "service-specific host directories (read-only) or named volumes.",
        severity=Severity.CRITICAL,
        levels=Levels(dev=MANDATORY, stage=MANDATORY, prod=MANDATORY,
                      why="a container with the Docker socket owns the machine, a developer's laptop included."),
        check=container_hardening,
    ),
]
