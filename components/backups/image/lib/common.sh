# Helpers shared by the backup and restore commands and the per-service scripts.
# Sourced, never run. POSIX sh: it runs under busybox in the backup container and
# under the tests' busybox on a developer machine.
#
# Layout of BACKUP_DIR:
#   sets/<UTC time>-<reason>/  one backup set: a verified file per service, SHA256SUMS
#   sets/.<name>.partial/      a set being written or fetched; never restored
#   minio/<bucket>/            the running mirror of a MinIO bucket (not per set)
#   status/<service>           last result per service, rendered as metrics

: "${BACKUP_DIR:?BACKUP_DIR is not set}"
SETS_DIR=$BACKUP_DIR/sets
STATUS_DIR=$BACKUP_DIR/status
ALL_SERVICES="postgres redis qdrant minio"
# Read by node-exporter's textfile collector (mounted from METRICS_DIR).
METRICS_FILE=shia_chatbot_backup.prom

log() {
    printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${0##*/}" "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

# The file a service leaves in a set; a set holds a service when it has this file.
service_file() {
    case "$1" in
        postgres) echo postgres.dump ;;
        redis) echo redis.rdb ;;
        qdrant) echo qdrant.snapshot ;;
        minio) echo minio.manifest ;;
        *) die "unknown service '$1' (one of: $ALL_SERVICES)" ;;
    esac
}

sha256() {
    sha256sum "$1" | cut -d ' ' -f 1
}

# Newest complete set holding SERVICE's file. Set names start with their UTC
# time, so the glob's sorted order is their age order.
latest_set() {
    wanted=$(service_file "$1")
    newest=""
    for dir in "$SETS_DIR"/*/; do
        dir=${dir%/}
        if [ -f "$dir/SHA256SUMS" ] && [ -f "$dir/$wanted" ]; then
            newest=$dir
        fi
    done
    [ -n "$newest" ] || return 1
    printf '%s\n' "$newest"
}

# Fail unless FILE in SET_DIR still has the checksum written when the set was made.
verify_checksum() {
    expected=$(sed -n "s/^\([0-9a-f]\{64\}\)  $2\$/\1/p" "$1/SHA256SUMS")
    [ -n "$expected" ] || die "$2 is not listed in $1/SHA256SUMS"
    [ "$(sha256 "$1/$2")" = "$expected" ] || die "$1/$2 does not match its checksum; not using it"
}

# Record SERVICE's result (1 ok, 0 failed) and its duration; a failure keeps the
# time of the last success, which is what an alert on staleness needs.
record_status() {
    mkdir -p "$STATUS_DIR"
    last_success=0
    if [ -f "$STATUS_DIR/$1" ]; then
        read -r _ last_success _ < "$STATUS_DIR/$1"
    fi
    if [ "$2" = 1 ]; then
        last_success=$(date +%s)
    fi
    printf '%s %s %s\n' "$2" "$last_success" "$3" > "$STATUS_DIR/.$1.tmp"
    mv "$STATUS_DIR/.$1.tmp" "$STATUS_DIR/$1"
}

# One metric family: NAME HELP FIELD (1 status, 2 last success, 3 duration).
_metric() {
    printf '# HELP %s %s\n# TYPE %s gauge\n' "$1" "$2" "$1"
    for file in "$STATUS_DIR"/*; do
        [ -f "$file" ] || continue
        printf '%s{service="%s"} %s\n' "$1" "${file##*/}" "$(cut -d ' ' -f "$3" "$file")"
    done
}

# Render every service's last result into METRICS_DIR, replaced in one rename so
# the collector never reads half a file.
write_metrics() {
    [ -n "${METRICS_DIR:-}" ] || return 0
    {
        _metric shia_chatbot_backup_last_status "1 if the last backup of the service was verified, else 0." 1
        _metric shia_chatbot_backup_last_success_timestamp_seconds "Unix time of the last verified backup of the service." 2
        _metric shia_chatbot_backup_last_duration_seconds "How long the last backup of the service took." 3
    } > "$METRICS_DIR/.$METRICS_FILE.tmp"
    mv "$METRICS_DIR/.$METRICS_FILE.tmp" "$METRICS_DIR/$METRICS_FILE"
}

# Remove sets (and abandoned partial ones) last modified more than RETENTION_DAYS
# ago. Called only after a fully successful run.
prune_sets() {
    days=${RETENTION_DAYS:?RETENTION_DAYS is not set}
    case $days in '' | *[!0-9]*) die "RETENTION_DAYS must be a whole number of days, not '$days'" ;; esac
    cutoff=$(($(date +%s) - days * 86400))
    for dir in "$SETS_DIR"/*/ "$SETS_DIR"/.*.partial/; do
        dir=${dir%/}
        [ -d "$dir" ] || continue
        if [ "$(stat -c %Y "$dir")" -lt "$cutoff" ]; then
            log "retention: removing ${dir##*/} (older than $days days)"
            rm -rf "$dir"
        fi
    done
}
