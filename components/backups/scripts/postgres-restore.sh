#!/bin/sh
# Restore the stack's PostgreSQL to a point in time, run on the Docker host
# (by `make`, with DOCKER_HOST for a remote one) with the docker CLI:
#
#   postgres-restore.sh TARGET [--type time|name|immediate|default]
#
# TARGET as lib/postgres.sh takes it: latest, a backup label, a UTC time
# ("2026-11-30 03:14:00"), or a restore point name (pre-migration-...).
# Environment: POSTGRES_CONTAINER, BACKUP_CONTAINER (e.g. prod-postgres,
# prod-backup); BACKUP_LIB (the scripts inside the backup container, default
# /opt/shia-backup/lib); RECOVERY_TIMEOUT (seconds for PostgreSQL to recover
# and promote, default 3600).
#
# 1. The target is checked against the repositories before anything stops;
#    a bad one is refused with one line and exit 2.
# 2. With PostgreSQL up, a commit and a WAL switch, archived: the state being
#    replaced stays recoverable (target `latest`) if this restore is not what
#    was wanted.
# 3. PostgreSQL stops gracefully; the backup container restores into its data
#    directory (pgbackrest restore --delta); PostgreSQL starts, recovers to the
#    target and promotes.
# 4. Success only once it accepts connections out of recovery and a CHECKPOINT
#    has written the recovered state to the data files, so it survives a crash
#    right after. One line on stdout says what was restored.
# Exit status: 0 restored; 1 failed (PostgreSQL may be stopped: see the
# message); 2 target refused, nothing changed.
set -eu

log() {
    printf '%s postgres-restore: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

: "${POSTGRES_CONTAINER:?POSTGRES_CONTAINER is not set}"
: "${BACKUP_CONTAINER:?BACKUP_CONTAINER is not set}"
LIB=${BACKUP_LIB:-/opt/shia-backup/lib}
TIMEOUT=${RECOVERY_TIMEOUT:-3600}
[ $# -ge 1 ] || { log "usage: postgres-restore.sh TARGET [--type time|name|immediate|default]"; exit 2; }

in_backup() {
    docker exec "$BACKUP_CONTAINER" "$@"
}

sql() {
    in_backup psql --no-psqlrc --no-align --tuples-only --dbname=postgres --command="$1"
}

running() {
    [ "$(docker inspect --format '{{.State.Running}}' "$POSTGRES_CONTAINER" 2> /dev/null)" = true ]
}

status=0
plan=$(in_backup sh "$LIB/postgres.sh" restore-check "$@") || status=$?
case $status in
    0) log "plan: $plan" ;;
    2) exit 2 ;;
    *) die "could not check the target in the repositories (above); nothing changed" ;;
esac

if running; then
    in_backup sh "$LIB/postgres.sh" archive-now || die "WAL could not be archived; nothing changed"
else
    log "$POSTGRES_CONTAINER is not running: WAL it had not archived yet is not in the repositories"
fi

started=$(date +%s)
docker stop "$POSTGRES_CONTAINER" > /dev/null || die "could not stop $POSTGRES_CONTAINER; nothing changed"
log "$POSTGRES_CONTAINER stopped"
in_backup sh "$LIB/postgres.sh" restore "$@" ||
    die "the restore failed; $POSTGRES_CONTAINER stays stopped (its data directory may be partly restored): fix the cause and run this again"
docker start "$POSTGRES_CONTAINER" > /dev/null || die "could not start $POSTGRES_CONTAINER"

deadline=$(($(date +%s) + TIMEOUT))
until [ "$(sql "SELECT pg_is_in_recovery()" 2> /dev/null)" = f ]; do
    running || die "$POSTGRES_CONTAINER stopped during recovery (docker logs $POSTGRES_CONTAINER); target latest brings back the state before this restore"
    [ "$(date +%s)" -lt "$deadline" ] || die "$POSTGRES_CONTAINER still recovering after ${TIMEOUT}s (docker logs $POSTGRES_CONTAINER)"
    sleep 1
done
# PostgreSQL 15 checkpoints at the end of a recovery that reached its target,
# but a promotion by trigger (pg_ctl promote) skips that; this makes the
# promise independent of how recovery ended.
sql "CHECKPOINT" > /dev/null || die "CHECKPOINT after the restore failed"
timeline=$(sql "SELECT timeline_id FROM pg_control_checkpoint()")
printf 'postgres restored (%s): accepting writes on timeline %s, checkpointed, %ss\n' \
    "$plan" "$timeline" "$(($(date +%s) - started))"
