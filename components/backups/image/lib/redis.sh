# Redis: BGSAVE, wait for it, copy the RDB it wrote, check the copy.
#
#   sh redis.sh backup DIR    DIR/redis.rdb
#   sh redis.sh restore DIR   the live Redis replicates the set's RDB from a
#                             temporary redis-server started here, then detaches.
#                             Nothing on its volume is touched by hand, and it
#                             rewrites its own append-only file after the sync.
#
# REDIS_HOST, REDIS_PORT, REDISCLI_AUTH (read by redis-cli, so the password is in
# no command line), REDIS_RDB (the live dump file, mounted here read-only).
# Restore: REDIS_RESTORE_ADDRESS (how the live Redis reaches this machine),
# REDIS_RESTORE_BIND (default 0.0.0.0), REDIS_RESTORE_PORT (default 6390).
# REDIS_TIMEOUT_SECONDS bounds each wait (default 600).
set -eu
. "$(dirname "$0")/common.sh"
: "${REDIS_HOST:?REDIS_HOST is not set}" "${REDIS_PORT:?REDIS_PORT is not set}"
: "${REDISCLI_AUTH:?REDISCLI_AUTH is not set}"
timeout=${REDIS_TIMEOUT_SECONDS:-600}

# FIELD from INFO SECTION of the server at HOST PORT (redis-cli prints CRLF
# lines); empty when the server does not answer.
info() {
    redis-cli -h "$1" -p "$2" INFO "$3" 2> /dev/null | tr -d '\r' | sed -n "s/^$4://p"
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

live() {
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"
}

bgsave_done() {
    [ "$(info "$REDIS_HOST" "$REDIS_PORT" persistence rdb_saves)" -gt "$before" ] 2> /dev/null &&
        [ "$(info "$REDIS_HOST" "$REDIS_PORT" persistence rdb_bgsave_in_progress)" = 0 ]
}

temporary_loaded() {
    [ "$(info 127.0.0.1 "$port" persistence loading)" = 0 ]
}

sync_done() {
    [ "$(info "$REDIS_HOST" "$REDIS_PORT" replication master_link_status)" = up ] &&
        [ "$(info "$REDIS_HOST" "$REDIS_PORT" replication master_sync_in_progress)" = 0 ]
}

backup() {
    copy=$1/redis.rdb.tmp
    trap 'rm -f "$copy"' EXIT
    : "${REDIS_RDB:?REDIS_RDB is not set}"
    before=$(info "$REDIS_HOST" "$REDIS_PORT" persistence rdb_saves)
    [ -n "$before" ] || die "no INFO from Redis at $REDIS_HOST:$REDIS_PORT"
    # SCHEDULE: if an AOF rewrite is running, the save starts right after it.
    reply=$(live BGSAVE SCHEDULE)
    case $reply in
        "Background saving started" | "Background saving scheduled") ;;
        *) die "BGSAVE refused: $reply" ;;
    esac
    wait_for bgsave_done "BGSAVE did not finish"
    status=$(info "$REDIS_HOST" "$REDIS_PORT" persistence rdb_last_bgsave_status)
    [ "$status" = ok ] || die "BGSAVE failed (rdb_last_bgsave_status:$status)"
    # Redis renames a finished RDB into place, so this copy is one whole file.
    cp "$REDIS_RDB" "$copy"
    report=$(redis-check-rdb "$copy" 2>&1) || { printf '%s\n' "$report" >&2; die "redis-check-rdb refused the RDB"; }
    mv "$copy" "$1/redis.rdb"
    trap - EXIT
}

# Key counts per database (db0:keys=N), without TTL statistics that drift.
keyspace() {
    redis-cli -h "$1" -p "$2" INFO keyspace | tr -d '\r' | sed -n 's/^\(db[0-9]*:keys=[0-9]*\).*/\1/p'
}

# Make the live Redis a primary again, whatever happened: a replica of a server
# that is gone would refuse every write.
detach() {
    live REPLICAOF NO ONE > /dev/null
    live CONFIG SET masterauth "" > /dev/null
    replicating=""
}

restore() {
    : "${REDIS_RESTORE_ADDRESS:?REDIS_RESTORE_ADDRESS is not set}"
    port=${REDIS_RESTORE_PORT:-6390}
    redis-check-rdb "$1/redis.rdb" > /dev/null 2>&1 || die "redis-check-rdb refused $1/redis.rdb"
    work=$(mktemp -d)
    cp "$1/redis.rdb" "$work/dump.rdb"
    # The config, password included, goes in on stdin (printf is a shell builtin).
    # No diskless-sync delay: there is one replica and it is already asking.
    printf 'port %s\nbind %s\ndir %s\ndbfilename dump.rdb\nappendonly no\nsave ""\nrepl-diskless-sync-delay 0\nrequirepass "%s"\n' \
        "$port" "${REDIS_RESTORE_BIND:-0.0.0.0}" "$work" "$REDISCLI_AUTH" |
        redis-server - > "$work/server.log" 2>&1 &
    server=$!
    replicating=""
    trap '[ -z "$replicating" ] || detach; kill "$server" 2> /dev/null; rm -rf "$work"' EXIT
    wait_for temporary_loaded "the temporary redis-server did not load the RDB"
    expected=$(keyspace 127.0.0.1 "$port")

    # -x: the password is the last argument, read from stdin.
    reply=$(printf '%s' "$REDISCLI_AUTH" | live -x CONFIG SET masterauth)
    [ "$reply" = OK ] || die "CONFIG SET masterauth refused: $reply"
    replicating=yes
    reply=$(live REPLICAOF "$REDIS_RESTORE_ADDRESS" "$port")
    case $reply in OK*) ;; *) die "REPLICAOF refused: $reply" ;; esac
    wait_for sync_done "Redis at $REDIS_HOST:$REDIS_PORT did not finish the sync"
    detach

    actual=$(keyspace "$REDIS_HOST" "$REDIS_PORT")
    [ "$actual" = "$expected" ] || die "after the sync Redis holds '$actual', the backup '$expected'"
    log "restored Redis at $REDIS_HOST:$REDIS_PORT from ${1##*/} ($expected)"
}

case "${1:-}" in
    backup) backup "$2" ;;
    restore) restore "$2" ;;
    *) die "usage: redis.sh backup DIR | restore DIR" ;;
esac
