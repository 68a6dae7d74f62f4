"""Nothing a container runs may reach the host: no privileges, no host
namespaces, no Docker socket or system directory, and no privilege gain.
Within its own walls, a container keeps only the capabilities its image needs
and cannot rewrite its own root filesystem (components/host/hardening.py is
the program's side of the same lists)."""

from __future__ import annotations

import posixpath
from typing import Iterator

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity

from shia_policies.resources import Container, known_items
from shia_policies.spec import ADVISORY, MANDATORY, Check, Levels, Rule

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
_ROOT_ENTRYPOINT = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID")
# Capabilities a service may add back after dropping ALL, and why.
ADDABLE_CAPABILITIES: dict[str, tuple[tuple[str, ...], str]] = {
    "postgres": (_ROOT_ENTRYPOINT, "the entrypoint chowns/chmods its data and socket directories, then gosu"),
    "redis": (("CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"), "the entrypoint chowns /data, then gosu"),
    "nginx": (("CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"),
              "the master binds 80/443, chowns its caches and starts workers as nginx"),
    "backup": (_ROOT_ENTRYPOINT, "pgBackRest runs as the server's uid via setpriv; a restore rewrites other "
                                 "services' volumes"),
}
# Services whose root filesystem may stay writable, and why.
WRITABLE_ROOT: dict[str, str] = {
    "qdrant": "writes its init marker and snapshots under /qdrant, in the image's layer",
    "prometheus": "its configuration is uploaded into /etc, which Docker refuses on a read-only root",
    "alertmanager": "its configuration is uploaded into /etc, which Docker refuses on a read-only root",
}


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
    if container.swarm:
        # A service has no no-new-privileges (neither this provider nor Docker
        # 20.10's service API): with every capability out of the bounding set, a
        # setuid binary gains no capability. capabilities-dropped checks that.
        return
    if not any(option in NO_NEW_PRIVILEGES for option in options):
        report("securityOpts lacks no-new-privileges: a setuid binary could raise a process's privileges.")


def _capabilities(container: Container) -> tuple[list[str], list[str]]:
    """(dropped, added), upper-case without the CAP_ prefix."""
    capabilities = container.props.get("capabilities") or {}
    def names(key: str) -> list[str]:
        return [c.upper().removeprefix("CAP_") for c in known_items(capabilities.get(key))[0]]
    return names("drops"), names("adds")


def capabilities_dropped(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = Container.of(args.resource_type, args.props)
    if container is None:
        return
    dropped, added = _capabilities(container)
    if "ALL" not in dropped:
        report("capabilities.drops lacks ALL: the container keeps Docker's default capabilities "
               "(chown, kill, setuid, raw sockets...).")
    allowed = ADDABLE_CAPABILITIES.get(container.service, ((), ""))[0]
    for capability in added:
        if capability not in allowed:
            report(f"capability {capability} added back to {container.service}: the allow-list grants it "
                   f"{', '.join(allowed) or 'none'}.")


def read_only_root(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    container = Container.of(args.resource_type, args.props)
    if container is None or container.service in WRITABLE_ROOT:
        return
    if container.props.get("readOnly") is not True:
        report(f"readOnly is not true: {container.service} can rewrite its own binaries and configuration; "
               "mount tmpfs where it must write.")


_NEW_IMAGE = Levels(dev=ADVISORY, stage=MANDATORY, prod=MANDATORY,
                    why="dev may try an image whose needs are not yet written down; stage runs what prod will.")

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
    Rule(
        name="capabilities-dropped",
        concern="hardening",
        description="Every container drops ALL capabilities and adds back only what the rule's allow-list "
                    "grants its service.",
        remediation="Set the service's row in components/host/hardening.py; a capability a new image needs "
                    "goes into both that table and this rule's ADDABLE_CAPABILITIES, with the reason.",
        severity=Severity.HIGH,
        levels=_NEW_IMAGE,
        check=capabilities_dropped,
    ),
    Rule(
        name="read-only-root",
        concern="hardening",
        description="Every container's root filesystem is read-only, unless the rule's allow-list names its "
                    "service with a reason.",
        remediation="Set readOnly through components/host/hardening.py and mount tmpfs where the process "
                    "writes; a service that cannot goes into WRITABLE_ROOT with the reason.",
        severity=Severity.HIGH,
        levels=_NEW_IMAGE,
        check=read_only_root,
    ),
]
