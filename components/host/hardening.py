"""What each service's container may do: one table, read by hardened_container
and by the policy pack's read-only allow-list (policies/shia_policies/hardening.py).

Every container drops ALL capabilities and adds back only `capabilities`; the
root filesystem is read-only unless `writable_root` says why not; `tmpfs`
paths (in memory, counted against the container's memory limit) are where a
process must write outside its volumes; `pids_limit` caps the container's
processes and threads (the pids cgroup counts both), so a fork bomb or a
thread leak stops inside the container instead of exhausting the host's PIDs. The images' users are kept: the
non-root ones run as their USER; those that start as root do so only to hand
their volumes to their user and drop to it (the reasons below).

Capabilities, by what needs them:
- CHOWN, DAC_OVERRIDE, FOWNER: an entrypoint running as root fixes the owner
  and mode of a volume its user owns (root without DAC_OVERRIDE cannot enter
  a 0700 directory of another uid; without FOWNER cannot chmod it);
- SETUID, SETGID: gosu / su-exec / setpriv / nginx's workers switch to the
  service's user;
- NET_BIND_SERVICE: nginx's master binds ports 80 and 443.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

DROP = ("ALL",)
# Mount options of every tmpfs: nothing on it runs or is a device.
TMPFS_SIZE_MB = 64
TMPFS_OPTIONS = f"rw,noexec,nosuid,nodev,size={TMPFS_SIZE_MB}m"
# Processes and threads per container: several times what any of our services
# runs (Go and Rust runtimes start a thread per core; the app's thread pools
# are bounded), far below the kernel's pid_max.
PIDS_LIMIT = 512
# PostgreSQL: one process per connection, plus its auxiliary processes
# (checkpointer, WAL writer, autovacuum workers, archiver, parallel workers).
POSTGRES_AUX_PROCESSES = 64


def postgres_pids_limit(max_connections: int) -> int:
    """The pids limit of a PostgreSQL container accepting `max_connections`."""
    return max_connections + POSTGRES_AUX_PROCESSES


@dataclass(frozen=True)
class Hardening:
    """capabilities: added back after dropping ALL; writable_root: None for a
    read-only root filesystem, else why the service writes into it; tmpfs:
    container paths mounted in memory."""

    capabilities: tuple[str, ...] = ()
    writable_root: Optional[str] = None
    tmpfs: tuple[str, ...] = ()
    why: str = ""
    pids_limit: int = PIDS_LIMIT

    @property
    def read_only(self) -> bool:
        return self.writable_root is None

    def tmpfs_mounts(self) -> Optional[dict[str, str]]:
        return {path: TMPFS_OPTIONS for path in self.tmpfs} or None


_ROOT_ENTRYPOINT = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID")
_UPLOADED_CONFIG = ("its configuration is uploaded (docker cp) into /etc before the first start, and Docker "
                    "refuses a copy into a read-only root filesystem outside a volume")

SERVICES: Mapping[str, Hardening] = {
    # The app image runs as its USER (docs/app-image.md); Python writes temp files only.
    "app": Hardening(tmpfs=("/tmp",), why="image USER app; no capability needed"),
    "worker": Hardening(tmpfs=("/tmp",), why="image USER app; no capability needed"),
    "flower": Hardening(tmpfs=("/tmp",), why="image USER app; no capability needed"),
    "postgres": Hardening(
        capabilities=_ROOT_ENTRYPOINT,
        # pgBackRest's lock and spool paths (components/backups/pgbackrest.py), initdb's temp files.
        tmpfs=("/tmp",),
        why="the entrypoint starts as root, chowns/chmods PGDATA and /var/run/postgresql to postgres "
            "(uid 70, 0700 directories) and drops to it with gosu/su-exec"),
    "redis": Hardening(
        capabilities=("CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"),
        why="the entrypoint starts as root, runs `find . ! -user redis -exec chown` over /data and drops to "
            "redis with gosu/su-exec; the find enters appendonlydir (redis, 0700), so without DAC_OVERRIDE "
            "it fails and the container exits at its second start (seen on the real engine)"),
    "qdrant": Hardening(
        writable_root="Qdrant writes its init marker (.qdrant-initialized) in its working directory /qdrant and "
                      "its snapshots under /qdrant/snapshots, in the image's layer",
        why="runs as root as the image does (no user switch), owning its volume: no capability needed"),
    "minio": Hardening(
        # MinIO creates ~/.minio/certs/CAs at start even without TLS.
        tmpfs=("/tmp", "/root/.minio"),
        why="runs as root as the image does (no user switch), owning its volume: no capability needed"),
    "nginx": Hardening(
        capabilities=("CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"),
        # The pid file, the proxy/client body caches, and the entrypoint's config edits
        # (its scripts skip a read-only /etc/nginx).
        tmpfs=("/var/cache/nginx", "/var/run", "/tmp"),
        why="the master binds 80/443 as root, chowns its cache directories to nginx and starts its workers "
            "as nginx"),
    "prometheus": Hardening(writable_root=_UPLOADED_CONFIG, why="image USER nobody; no capability needed"),
    "alertmanager": Hardening(writable_root=_UPLOADED_CONFIG, why="image USER nobody; no capability needed"),
    "postgres-exporter": Hardening(why="image USER nobody; writes nothing"),
    "redis-exporter": Hardening(why="image USER 59000; writes nothing"),
    "node-exporter": Hardening(why="image USER nobody; reads its read-only mounts only"),
    "backup": Hardening(
        capabilities=_ROOT_ENTRYPOINT,
        # The crontab the scheduler writes at start; HOME, mc's config, pgBackRest's
        # lock and the jobs' temp files (restic's cache and the staging are on /backups).
        tmpfs=("/etc/crontabs", "/tmp"),
        why="crond runs the jobs as root; pgBackRest runs as the server's uid through setpriv, a restore "
            "chowns the repository and rewrites volumes other uids own"),
}


# The smoke check's probe (components/app/scripts/smoke-check.sh): busybox wget.
PROBE = Hardening(pids_limit=16, why="busybox wget as the image's user: writes nothing, needs no capability")


def run_flags(rights: Hardening) -> str:
    """`rights` as `docker run` flags, for the one-off containers steps start
    (migrations, smoke probes): words for an unquoted shell expansion."""
    flags = [f"--cap-drop {d}" for d in DROP] + [f"--cap-add {c}" for c in rights.capabilities]
    if rights.read_only:
        flags.append("--read-only")
    flags += [f"--tmpfs {path}:{TMPFS_OPTIONS}" for path in rights.tmpfs]
    flags.append(f"--pids-limit {rights.pids_limit}")
    return " ".join(flags)


def for_service(service: str) -> Hardening:
    """The service's row. Raises KeyError for a service the table does not name:
    a new container must say what it needs."""
    return SERVICES[service]


def writable_roots() -> dict[str, str]:
    """Services allowed a writable root filesystem, with the reason."""
    return {name: h.writable_root for name, h in SERVICES.items() if h.writable_root}

