# Helpers shared by the backup and restore commands and the per-service scripts.
# Sourced, never run. POSIX sh: it runs under busybox in the backup container and
# under the tests' shell on a developer machine.
#
# Each service's backups live in its tool's repository: pgBackRest's (PostgreSQL)
# and restic's (Redis, Qdrant, MinIO). What stays here is what no tool does: the
# per-service result the alerts read.
#
# BACKUP_DIR/status/<service>: the last result of the service, rendered as metrics.

: "${BACKUP_DIR:?BACKUP_DIR is not set}"
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

# The credentials: from <NAME>_FILE where the stack passes files (on a swarm).
# Beside this file, found from the script's own path (bin/ or lib/).
# shellcheck source=secret-files.sh
. "$(dirname "$(readlink -f "$0")")/../lib/secret-files.sh"
resolve_secret_files || exit 1

sha256() {
    sha256sum "$1" | cut -d ' ' -f 1
}

is_service() {
    case " $ALL_SERVICES " in *" $1 "*) return 0 ;; esac
    return 1
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
