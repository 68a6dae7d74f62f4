"""Redis' ACL users, and the server config that defines them, written on redis-server's stdin.

Each user's password comes from the container's environment when the server
starts, so none is in an argv (`docker inspect`'s Cmd, /proc/*/cmdline) or a
file. The app's and the exporter's arrive as SHA-256 hex digests (`#<hex>`,
the form ACL files keep): the Redis container never holds their plaintext.
The admin's and the backup job's arrive in plaintext, because the Redis
container uses them itself: the admin for its healthcheck and the maxmemory
step, the backup password as `masterauth`, what a restore's temporary server
asks of the live Redis when it replicates from it (so the backup user needs no
CONFIG SET, which could point `dir` anywhere). A changed password changes the
container's environment, so Docker recreates it and the server starts with it:
rotation is a redeploy, as for every data service.

On a swarm (docs/swarm.md) the same four values are Swarm secrets, files under
/run/secrets named by `<VAR>_FILE`, and the environment holds no secret: the
container's shell reads each `<VAR>` from its file (`from_files`) before the
here-document expands it, and the healthcheck and the maxmemory step read the
admin's password from its file (`admin_cli`). A changed secret is a new Swarm
secret, so the service's task is replaced and the server starts with it.
"""

from __future__ import annotations

import hashlib

# Environment variables of the Redis container.
ADMIN_PASSWORD_ENV = "REDIS_ADMIN_PASSWORD"
BACKUP_PASSWORD_ENV = "REDIS_BACKUP_PASSWORD"
APP_PASSWORD_SHA256_ENV = "REDIS_APP_PASSWORD_SHA256"
EXPORTER_PASSWORD_SHA256_ENV = "REDIS_EXPORTER_PASSWORD_SHA256"
# What the server's config reads, in the container's environment order; on a
# swarm each is read from `<VAR>_FILE` instead.
SECRET_VARIABLES = (ADMIN_PASSWORD_ENV, BACKUP_PASSWORD_ENV, APP_PASSWORD_SHA256_ENV, EXPORTER_PASSWORD_SHA256_ENV)

ADMIN_USER = "admin"
APP_USER = "app"
BACKUP_USER = "backup"
EXPORTER_USER = "exporter"

# Rules after `on`, the password and `resetkeys resetchannels -@all`.
RULES: dict[str, str] = {
    ADMIN_USER: "~* &* +@all",
    # The app and the Celery worker and Flower (kombu's Redis transport: lists,
    # sorted sets and hashes, MULTI/EXEC, Lua, pub/sub for fanout and results):
    # everything but the admin and dangerous categories (CONFIG, FLUSHALL,
    # FLUSHDB, DEBUG, SHUTDOWN, KEYS, MONITOR, REPLICAOF, MODULE, ACL, INFO...).
    APP_USER: "~* &* +@all -@admin -@dangerous",
    # lib/redis.sh: `redis-cli --rdb` (REPLCONF rdb-only, then SYNC; PSYNC for
    # newer clients), INFO for its waits and key counts, REPLICAOF for a
    # restore and BGSAVE SCHEDULE after it when append-only is off. No keys:
    # the RDB comes over the replication stream, not by reading keys.
    BACKUP_USER: "+ping +info +sync +psync +replconf +replicaof +bgsave",
    # oliver006/redis_exporter's default scrape: INFO, SLOWLOG, LATENCY; no
    # CONFIG GET (it would read `masterauth`), so the exporter's redis_config_*
    # metrics are absent (maxmemory is in INFO memory too).
    EXPORTER_USER: "+ping +info +slowlog|get +slowlog|len +latency|latest +latency|histogram +client|setname",
}


def sha256_hex(password: str) -> str:
    """The digest Redis keeps for a password: lowercase hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(password.encode()).hexdigest()


def _user_line(user: str, password_rule: str) -> str:
    return f"user {user} on {password_rule} resetkeys resetchannels -@all {RULES[user]}"


def config_heredoc(command: str) -> str:
    """`command` (a POSIX sh command that ends in `redis-server -`, usually
    after `exec`) with the users part of redis.conf as its stdin: a here-document
    whose lines name the passwords as the environment variables above, expanded
    by the shell (no argv holds them; sh feeds the document through a pipe, not
    a file). Not a `printf … | exec redis-server` pipeline: there the server
    runs in a subshell, the shell stays PID 1 and ignores `docker stop`'s
    SIGTERM, and Redis is SIGKILLed at the end of the grace (seen on the real
    engine). The default user is off: a client that does not AUTH can run nothing."""
    lines = ["user default off resetkeys resetchannels -@all",
             _user_line(ADMIN_USER, f">${ADMIN_PASSWORD_ENV}"), _user_line(BACKUP_USER, f">${BACKUP_PASSWORD_ENV}"),
             _user_line(APP_USER, f"#${APP_PASSWORD_SHA256_ENV}"),
             _user_line(EXPORTER_USER, f"#${EXPORTER_PASSWORD_SHA256_ENV}"),
             f'masterauth "${BACKUP_PASSWORD_ENV}"']
    return f"{command} <<EOF\n" + "".join(f"{line}\n" for line in lines) + "EOF"



def from_files(command: str, variables: tuple[str, ...] = SECRET_VARIABLES) -> str:
    """`command` (POSIX sh) after setting each of `variables` from the file its
    `<VAR>_FILE` names, unless `<VAR>` is already set: the swarm form of the
    container's command. The values become shell variables, not exported, so
    the here-document can expand them and no process's environment holds them;
    a missing or unreadable file stops the command before the server starts."""
    reads = "".join(f'{v}=${{{v}:-$(cat "${v}_FILE")}} && ' for v in variables)
    return reads + command


def admin_cli(swarm: bool) -> str:
    """redis-cli logged in as the admin, for the container's healthcheck and the
    steps that `docker exec` into it: its password from REDISCLI_AUTH in the
    environment, or on a swarm from the admin password's file."""
    cli = f"redis-cli --user {ADMIN_USER}"
    return f'REDISCLI_AUTH="${{REDISCLI_AUTH:-$(cat "${ADMIN_PASSWORD_ENV}_FILE")}}" {cli}' if swarm else cli
