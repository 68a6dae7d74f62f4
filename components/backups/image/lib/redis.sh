# Redis: the dataset as an RDB, over the replication protocol, stored with restic.
#
#   sh redis.sh backup REASON   `redis-cli --rdb` asks the live server for an RDB
#                               the way a replica does, so it works while a save
#                               of the server's own is running (BGSAVE would be
#                               refused); redis-check-rdb checks the copy, then
#                               BACKUP_STAGING/redis/dump.rdb becomes a snapshot,
#                               read back in full before retention. Prints its id.
#   sh redis.sh restore TARGET  TARGET `latest` or a snapshot id: the live Redis
#                               replicates the RDB from a temporary redis-server
#                               started here, detaches, and must then hold what
#                               the RDB holds (key counts per database) and have
#                               it on disk: its append-only file rewritten after
#                               the sync, or, without one, a save done. Nothing on
#                               its volume is touched by hand.
#   sh redis.sh offsite | verify   see restic.sh
#
# REDIS_HOST, REDIS_PORT, REDIS_USER (the ACL user: PING, INFO, SYNC, PSYNC,
# REPLCONF, REPLICAOF, BGSAVE; no keys), REDISCLI_AUTH (its password, read by
# redis-cli, so it is in no command line; the live Redis has it as `masterauth`
# too, which is how it logs in to the temporary server of a restore). Restore: REDIS_RESTORE_ADDRESS (how the live Redis reaches
# this machine), REDIS_RESTORE_BIND (default 0.0.0.0), REDIS_RESTORE_PORT
# (default 6390). REDIS_TIMEOUT_SECONDS bounds each wait (default 600).
set -eu
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/restic.sh"
: "${REDIS_HOST:?REDIS_HOST is not set}" "${REDIS_PORT:?REDIS_PORT is not set}"
: "${REDIS_USER:?REDIS_USER is not set}" "${REDISCLI_AUTH:?REDISCLI_AUTH is not set}"
timeout=${REDIS_TIMEOUT_SECONDS:-600}
staging=$(staging_dir redis)

# redis-cli for the live Redis, as REDIS_USER.
live() {
    redis-cli --user "$REDIS_USER" -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"
}

# redis-cli for the temporary server of a restore (its default user).
temporary() {
    redis-cli -h 127.0.0.1 -p "$port" "$@"
}

# FIELD from INFO SECTION of the server CLI (live or temporary) talks to
# (redis-cli prints CRLF lines); empty when the server does not answer.
info() {
    "$1" INFO "$2" 2> /dev/null | tr -d '\r' | sed -n "s/^$3://p"
}

live_info() {
    info live "$@"
}

# Call CHECK five times a second until it succeeds; fail with MESSAGE after $timeout s.
wait_for() {
    polls=0
    until "$1"; do
        [ "$polls" -lt $((timeout * 5)) ] || die "$2 (waited $timeout s)"
        sleep 0.2
        polls=$((polls + 1))
    done
}

backup() {
    rm -rf "$staging"
    mkdir -p "$staging"
    trap 'rm -rf "$staging"' EXIT
    # redis-cli reports its progress on stderr; its exit code is what counts.
    if ! transfer=$(timeout "$timeout" redis-cli --user "$REDIS_USER" -h "$REDIS_HOST" -p "$REDIS_PORT" --rdb "$staging/dump.rdb" 2>&1); then
        printf '%s\n' "$transfer" >&2
        die "no RDB from Redis at $REDIS_HOST:$REDIS_PORT"
    fi
    if ! report=$(redis-check-rdb "$staging/dump.rdb" 2>&1); then
        printf '%s\n' "$report" >&2
        die "redis-check-rdb refused the RDB"
    fi
    log "RDB checked: $(printf '%s\n' "$report" | sed -n 's/^\[info\] \([0-9]*\) keys read$/\1 keys/p')"

    id=$(snapshot_create redis "$1")
    snapshot_matches_staging "$id" redis || {
        snapshot_discard "$RESTIC_REPOSITORY" "$id"
        die "snapshot $id does not read back as the RDB"
    }
    apply_retention "$RESTIC_REPOSITORY" redis || die "retention failed (snapshot $id is stored and verified)"
    printf '%s\n' "$id"
}

temporary_loaded() {
    [ "$(info temporary persistence loading)" = 0 ]
}

sync_done() {
    [ "$(live_info replication master_link_status)" = up ] &&
        [ "$(live_info replication master_sync_in_progress)" = 0 ]
}

# With appendonly, the replica rewrites its append-only file after a full sync
# (until then the synced data is in no file it would load after a crash).
aof_rewritten() {
    [ "$(live_info persistence aof_rewrites)" -gt "$rewrites_before" ] 2> /dev/null &&
        [ "$(live_info persistence aof_rewrite_in_progress)" = 0 ] &&
        [ "$(live_info persistence aof_rewrite_scheduled)" = 0 ]
}

rdb_saved() {
    [ "$(live_info persistence rdb_saves)" -gt "$saves_before" ] 2> /dev/null &&
        [ "$(live_info persistence rdb_bgsave_in_progress)" = 0 ]
}

# Key counts per database on one line (db0:keys=N db3:keys=M), without the TTL
# statistics that drift, of the server CLI (live or temporary) talks to.
keyspace() {
    "$1" INFO keyspace | tr -d '\r' | sed -n 's/^\(db[0-9]*:keys=[0-9]*\).*/\1/p' | tr '\n' ' '
}

# Make the live Redis a primary again, whatever happened: a replica of a server
# that is gone would refuse every write.
detach() {
    live REPLICAOF NO ONE > /dev/null
    replicating=""
}

restore() {
    : "${REDIS_RESTORE_ADDRESS:?REDIS_RESTORE_ADDRESS is not set}"
    port=${REDIS_RESTORE_PORT:-6390}
    find_snapshot redis "$1" || die "no Redis backup '$1' in the restic repositories: nothing to restore"
    work=$(mktemp -d "$BACKUP_STAGING/.restore-redis.XXXXXX")
    replicating=""
    server=""
    # The temporary server is gone (its port free) before this returns.
    trap '[ -z "$replicating" ] || detach
        [ -z "$server" ] || { kill "$server"; wait "$server"; } 2> /dev/null
        rm -rf "$work"' EXIT
    checked restic -r "$found_repo" dump "$found_id" "$staging/dump.rdb" > "$work/dump.rdb" ||
        die "cannot read the RDB of snapshot $found_id"
    redis-check-rdb "$work/dump.rdb" > /dev/null 2>&1 || die "redis-check-rdb refused the RDB of snapshot $found_id"

    # The config, password included, goes in on stdin (printf is a shell builtin).
    # No diskless-sync delay: there is one replica and it is already asking.
    printf 'port %s\nbind %s\ndir %s\ndbfilename dump.rdb\nappendonly no\nsave ""\nrepl-diskless-sync-delay 0\nrequirepass "%s"\n' \
        "$port" "${REDIS_RESTORE_BIND:-0.0.0.0}" "$work" "$REDISCLI_AUTH" |
        redis-server - > "$work/server.log" 2>&1 &
    server=$!
    wait_for temporary_loaded "the temporary redis-server did not load the RDB"
    expected=$(keyspace temporary)

    aof=$(live_info persistence aof_enabled)
    rewrites_before=$(live_info persistence aof_rewrites)
    [ -n "$rewrites_before" ] || die "no INFO from Redis at $REDIS_HOST:$REDIS_PORT"
    replicating=yes
    reply=$(live REPLICAOF "$REDIS_RESTORE_ADDRESS" "$port")
    case $reply in OK*) ;; *) die "REPLICAOF refused: $reply" ;; esac
    wait_for sync_done "Redis at $REDIS_HOST:$REDIS_PORT did not finish the sync"
    detach

    if [ "$aof" = 1 ]; then
        wait_for aof_rewritten "Redis did not rewrite its append-only file after the sync"
        status=$(live_info persistence aof_last_bgrewrite_status)
        [ "$status" = ok ] || die "the append-only file rewrite failed (aof_last_bgrewrite_status:$status)"
        status=$(live_info persistence aof_last_write_status)
        [ "$status" = ok ] || die "Redis cannot write its append-only file (aof_last_write_status:$status)"
    else
        saves_before=$(live_info persistence rdb_saves)
        reply=$(live BGSAVE SCHEDULE)
        case $reply in
            "Background saving started" | "Background saving scheduled") ;;
            *) die "BGSAVE refused: $reply" ;;
        esac
        wait_for rdb_saved "Redis did not save the restored data"
        status=$(live_info persistence rdb_last_bgsave_status)
        [ "$status" = ok ] || die "the save after the restore failed (rdb_last_bgsave_status:$status)"
    fi

    actual=$(keyspace live)
    [ "$actual" = "$expected" ] || die "after the sync Redis holds '$actual', the backup '$expected'"
    log "restored Redis at $REDIS_HOST:$REDIS_PORT from snapshot $found_id, on its disk: $expected"
}

case "${1:-}" in
    backup) backup "${2:?usage: redis.sh backup REASON}" ;;
    restore) restore "${2:-latest}" ;;
    offsite) offsite_sync redis ;;
    verify) verify_repositories ;;
    *) die "usage: redis.sh backup REASON | restore latest|ID | offsite | verify" ;;
esac
