# PostgreSQL on pgBackRest: base backups (full, diff, incr) in the repositories
# the PGBACKREST_* variables configure (no config file), and the server's own
# WAL archiving (archive_command = 'pgbackrest archive-push %p', which pushes
# every segment to every repository), so a restore can recover to any moment
# the archive covers.
#
#   sh postgres.sh init                  stanza-create (idempotent), then `pgbackrest check`:
#                                        WAL reaches every repository
#   sh postgres.sh backup REASON         hourly: incr; daily, manual: diff; a full instead when
#                                        the repository has none or the newest is >= 7 UTC days
#                                        old. Verified, then expired. Prints the backup label.
#   sh postgres.sh backup pre-migration-SLOT
#                                        no backup (a full only if there is none yet): a named
#                                        restore point, its WAL segment archived to every
#                                        repository. Prints its name, pre-migration-SLOT-<UTC time>.
#   sh postgres.sh offsite [REASON]      the same backup to repo2, when PGBACKREST_REPO2_TYPE is set
#   sh postgres.sh verify                `pgbackrest verify` of every repository, and WAL gaps
#   sh postgres.sh metrics               METRICS_DIR/shia_chatbot_wal.prom from pg_stat_archiver
#   sh postgres.sh archive-now           commit, switch the WAL segment, wait until it is
#                                        archived: all committed so far can be recovered
#   sh postgres.sh restore-check TARGET [--type T]
#   sh postgres.sh restore TARGET [--type T]
#                                        (PostgreSQL stopped) pgbackrest restore --delta; recovery
#                                        to TARGET happens when PostgreSQL starts, then it promotes
#
# TARGET (type guessed when --type is not given):
#   latest                               default: replay all archived WAL
#   20261123-020001F[_20261130-020001D]  immediate: that backup, consistent, no WAL beyond it
#   2026-11-30 03:14:00[.123456][Z]      time (UTC): the commits up to that moment
#   pre-migration-blue-20261130T031500Z  name: a restore point this script made
# A target the repositories cannot reach is refused with one line and exit 2.
#
# Exit status: 0 done; 1 failed (message on stderr); 2 refused target.
# Reads: PGBACKREST_STANZA, PGBACKREST_PG1_PATH, PGBACKREST_REPO1_RETENTION_FULL,
# PGBACKREST_REPO2_TYPE (and every other PGBACKREST_* through pgBackRest),
# PGBACKREST_ARCHIVE_TIMEOUT (seconds to wait for a segment, default 60),
# BACKUP_FULL_EVERY_DAYS (default 7), libpq's PGHOST PGPORT PGUSER (the backup role: pg_read_all_settings,
# pg_checkpoint and the backup functions; components/data/scripts/postgres-roles.sh), METRICS_DIR.
# Run as root (the container) pgBackRest runs as the owner of the data
# directory, the postgres uid, so repository and restored files stay its own.
set -eu
. "$(dirname "$0")/common.sh"
: "${PGBACKREST_STANZA:?PGBACKREST_STANZA is not set}"
: "${PGBACKREST_PG1_PATH:?PGBACKREST_PG1_PATH is not set}"
# Backup labels, restore point names and time targets are UTC.
export TZ=UTC
# The stack sets it from components/backups/pgbackrest.py (FULL_BACKUP_PERIOD_DAYS),
# which sizes the retention on it.
FULL_EVERY_DAYS=${BACKUP_FULL_EVERY_DAYS:-7}
WAL_METRICS_FILE=shia_chatbot_wal.prom

pgbr() {
    if [ "$(id -u)" != 0 ]; then
        pgbackrest "$@"
        return
    fi
    owner=$(stat -c %u:%g "$PGBACKREST_PG1_PATH")
    [ "${owner%:*}" != 0 ] || die "$PGBACKREST_PG1_PATH belongs to root, not to the postgres uid"
    setpriv --reuid="${owner%:*}" --regid="${owner#*:}" --clear-groups pgbackrest "$@"
}

sql() {
    psql --no-psqlrc --quiet --no-align --tuples-only --set=ON_ERROR_STOP=1 --dbname=postgres --command="$1"
}

repos() {
    if [ -n "${PGBACKREST_REPO2_TYPE:-}" ]; then echo "1 2"; else echo 1; fi
}

# `pgbackrest info` of REPO (empty: every repository) as JSON, filtered by
# the jq program FILTER. Its log stays off stdout, which holds the JSON.
info() {
    json=$(pgbr info ${1:+--repo="$1"} --output=json --log-level-console=off --log-level-stderr=warn) ||
        die "pgbackrest info failed"
    printf '%s\n' "$json" | jq -r ".[0] | $2"
}

ensure_stanza() {
    # status 1: missing stanza path (a new stack whose init has not run yet).
    if [ "$(info "$1" .status.code)" = 1 ]; then
        pgbr stanza-create >&2 || die "pgbackrest stanza-create failed"
    fi
}

# Prints "TYPE why" for a backup of REASON to REPO.
backup_type() {
    full_start=$(info "$1" '[.backup[] | select(.type == "full")] | last | .timestamp.start // empty')
    if [ -z "$full_start" ]; then
        echo "full: repo$1 has no full backup yet"
        return
    fi
    # Whole UTC days, so a weekly full starts on the same day's first run
    # every week instead of drifting by a run's duration.
    age=$(($(date +%s) / 86400 - full_start / 86400))
    if [ "$age" -ge "$FULL_EVERY_DAYS" ]; then
        echo "full: the newest full backup of repo$1 is $age days old"
        return
    fi
    case $2 in
        hourly) echo "incr: changes since the previous backup" ;;
        # A diff depends on the newest full alone. A manual full would count
        # against the retention by full count and expire the oldest full
        # early, shortening the window a restore can reach.
        *) echo "diff: changes since the newest full backup" ;;
    esac
}

# The DETAIL lines of a verify report as "ARCHIVE-ID START STOP", one per
# run of consecutive WAL segments found in the repository.
wal_runs() {
    printf '%s\n' "$1" |
        sed -n 's/.*DETAIL: archiveId: \([^,]*\), wal start: \([0-9A-F]*\), wal stop: \([0-9A-F]*\).*/\1 \2 \3/p'
}

# Fails when `pgbackrest verify` of REPO finds anything. It reads every file
# of every backup set and every archived WAL segment, decompressed, against
# the checksums and sizes in the manifests and WAL names. pgBackRest 2.45
# cannot limit it to one set (verify --set is ignored, pgbackrest#2419) and
# exits 0 whatever it finds (pgbackrest#2502): its report is read instead.
# The report goes to stderr; VERIFY_REPORT keeps it for the caller.
verify_repo() {
    VERIFY_REPORT=$(pgbr verify --repo="$1" --output=text --verbose --log-level-console=detail \
        --log-level-stderr=off 2>&1) || {
        printf '%s\n' "$VERIFY_REPORT" >&2
        return 1
    }
    printf '%s\n' "$VERIFY_REPORT" | grep -v ' DETAIL: ' >&2
    printf '%s\n' "$VERIFY_REPORT" | grep -qx 'status: ok'
}

# Exit 0 only when the new set LABEL in REPO is whole: every file it needs
# reads back with its checksum, pgBackRest saw no page checksum error while
# copying it, and the WAL from its start to its stop is in the archive (2.45's
# verify leaves that last check out). A damaged new set is removed at once, so
# no later incr or diff builds on it and `latest` never names it.
check_new_set() {
    repo=$1 label=$2
    fields=$(info "$repo" ".backup[] | select(.label == \"$label\") |
        \"\\(.error) \\(.archive.start) \\(.archive.stop) \\(.database.id)\"")
    read -r page_errors wal_start wal_stop db_id << EOF
$fields
EOF
    archive_id=$(info "$repo" ".archive[] | select(.database.id == $db_id) | .id")
    if ! verify_repo "$repo"; then
        # The report comes twice, in the log and as output: the first will do.
        case $(printf '%s\n' "$VERIFY_REPORT" | sed -n "s/^ *backup: $label, status: \([^,]*\),.*/\1/p" | head -n 1) in
            valid) die "repo$repo: verify found damage in older backups or WAL (above); $label itself is valid; nothing expired" ;;
            invalid)
                pgbr expire --repo="$repo" --set="$label" >&2
                die "repo$repo: the new backup $label failed verification (above) and was removed; nothing else expired"
                ;;
            *) die "repo$repo: verify did not report on $label (above); it is kept, nothing expired" ;;
        esac
    fi
    runs=$(wal_runs "$VERIFY_REPORT")
    [ -n "$runs" ] || die "repo$repo: no WAL ranges in verify's report (above); $label is kept, nothing expired"
    if ! printf '%s\n' "$runs" | awk -v id="$archive_id" -v a="$wal_start" -v b="$wal_stop" '
        $1 == id && ($2 "") <= (a "") && (b "") <= ($3 "") { found = 1 } END { exit !found }'; then
        pgbr expire --repo="$repo" --set="$label" >&2
        die "repo$repo: WAL $wal_start..$wal_stop that $label needs is not all in the archive; $label removed"
    fi
    # Page checksums exist only on clusters initialised with --data-checksums.
    [ "$page_errors" = false ] ||
        die "repo$repo: pgBackRest found invalid page checksums in the database while copying it into $label (pgbackrest info); nothing expired"
}

# Back up to REPO (type by REASON and age), verify, expire; prints the label.
backup_to() {
    repo=$1 reason=$2
    ensure_stanza "$repo"
    choice=$(backup_type "$repo" "$reason")
    type=${choice%%:*}
    log "repo$repo: $type backup (${choice#*: })"
    # --no-expire-auto: retention runs only once the new set has verified,
    # so a failed or damaged backup never expires an older one.
    pgbr backup --repo="$repo" --type="$type" --start-fast --no-expire-auto >&2 ||
        die "repo$repo: pgbackrest backup failed; nothing expired"
    label=$(info "$repo" '.backup | last | .label')
    check_new_set "$repo" "$label"
    pgbr expire --repo="$repo" >&2 || die "repo$repo: $label is good but pgbackrest expire failed"
    log "repo$repo: $label verified, retention applied"
    printf '%s\n' "$label"
}

# Switch to a new WAL segment and wait until the finished one is archived.
# archive-push exits 0 only once the segment is in every repository, so
# PostgreSQL marks it done (its .ready status file goes) only then.
archive_current_segment() {
    [ "$(sql "SHOW archive_mode")" != off ] || die "archive_mode is off: WAL is not archived"
    segment=$(sql "SELECT pg_walfile_name(pg_switch_wal())")
    timeout=${PGBACKREST_ARCHIVE_TIMEOUT:-60}
    deadline=$(($(date +%s) + timeout))
    until [ "$(sql "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name = '$segment.ready'")" = 0 ]; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            die "WAL segment $segment not archived after ${timeout}s; pg_stat_archiver: $(sql \
                "SELECT 'last failed ' || coalesce(last_failed_wal, '-') || ' at ' || coalesce(last_failed_time::text, '-') FROM pg_stat_archiver")"
        fi
        sleep 0.2
    done
    printf '%s\n' "$segment"
}

# The release's pre-migration step: what a restore to the point needs is a
# base backup older than it and the WAL up to it, in every repository.
restore_point() {
    slot=${1#pre-migration-}
    case $slot in '' | *[!a-z0-9-]*) die "slot '$slot': use lowercase letters, digits and -" ;; esac
    if [ "$(info 1 '.backup | length')" = 0 ]; then
        backup_to 1 "$1" > /dev/null
    fi
    # Strictly after the newest backup's stop second: a restore picks the
    # backup to recover from by comparing these times (see plan).
    stop=$(info 1 '.backup | last | .timestamp.stop')
    while [ "$(date +%s)" -le "$stop" ]; do sleep 0.2; done
    name=pre-migration-$slot-$(date -u +%Y%m%dT%H%M%SZ)
    lsn=$(sql "SELECT pg_create_restore_point('$name')")
    segment=$(archive_current_segment)
    log "restore point $name at $lsn, WAL segment $segment archived"
    printf '%s\n' "$name"
}

backup() {
    reason=${1:-}
    : "${PGBACKREST_REPO1_RETENTION_FULL:?PGBACKREST_REPO1_RETENTION_FULL is not set}"
    case $reason in
        pre-migration-*) restore_point "$reason" ;;
        hourly | daily | manual) backup_to 1 "$reason" ;;
        *) die "reason '$reason': one of hourly, daily, manual, pre-migration-SLOT" ;;
    esac
}

offsite() {
    if [ -z "${PGBACKREST_REPO2_TYPE:-}" ]; then
        log "no repo2 configured: nothing to do"
        return
    fi
    case ${1:-daily} in
        # Its WAL went to every repository before the restore point returned.
        pre-migration-*) return ;;
    esac
    : "${PGBACKREST_REPO2_RETENTION_FULL:?PGBACKREST_REPO2_RETENTION_FULL is not set}"
    backup_to 2 "${1:-daily}"
}

verify() {
    failed=""
    for repo in $(repos); do
        verify_repo "$repo" || failed="$failed repo$repo"
        # A gap (two runs on one timeline) is WAL a recovery cannot cross;
        # 2.45 reports it as a DETAIL line only.
        wal_runs "$VERIFY_REPORT" | awk -v repo="repo$repo" '
            { key = $1 " " substr($2, 1, 8) }
            key in stop { printf "%s: WAL missing between %s and %s (archive %s)\n", repo, stop[key], $2, $1; gap = 1 }
            { stop[key] = $3 }
            END { exit gap }' >&2 || failed="$failed repo$repo(WAL gap)"
    done
    [ -z "$failed" ] || die "verify found problems in:$failed"
    log "verify: every repository is whole"
}

metrics() {
    : "${METRICS_DIR:?METRICS_DIR is not set}"
    row=$(sql "SELECT archived_count, failed_count,
                      coalesce(extract(epoch FROM last_archived_time)::bigint, 0),
                      coalesce(extract(epoch FROM last_failed_time)::bigint, 0),
                      (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')
               FROM pg_stat_archiver")
    IFS='|' read -r archived failed last_archived last_failed ready << EOF
$row
EOF
    tmp=$METRICS_DIR/.$WAL_METRICS_FILE.tmp
    {
        printf '# HELP shia_chatbot_postgres_wal_archived_total WAL files archived (pg_stat_archiver.archived_count).\n'
        printf '# TYPE shia_chatbot_postgres_wal_archived_total counter\n'
        printf 'shia_chatbot_postgres_wal_archived_total %s\n' "$archived"
        printf '# HELP shia_chatbot_postgres_wal_failed_total Failed archive_command runs (pg_stat_archiver.failed_count).\n'
        printf '# TYPE shia_chatbot_postgres_wal_failed_total counter\n'
        printf 'shia_chatbot_postgres_wal_failed_total %s\n' "$failed"
        printf '# HELP shia_chatbot_postgres_wal_last_archived_timestamp_seconds Unix time of the last archived WAL file, 0 if none.\n'
        printf '# TYPE shia_chatbot_postgres_wal_last_archived_timestamp_seconds gauge\n'
        printf 'shia_chatbot_postgres_wal_last_archived_timestamp_seconds %s\n' "$last_archived"
        printf '# HELP shia_chatbot_postgres_wal_last_failed_timestamp_seconds Unix time of the last failed archive_command, 0 if none.\n'
        printf '# TYPE shia_chatbot_postgres_wal_last_failed_timestamp_seconds gauge\n'
        printf 'shia_chatbot_postgres_wal_last_failed_timestamp_seconds %s\n' "$last_failed"
        printf '# HELP shia_chatbot_postgres_wal_ready_segments WAL files waiting to be archived (.ready in pg_wal/archive_status).\n'
        printf '# TYPE shia_chatbot_postgres_wal_ready_segments gauge\n'
        printf 'shia_chatbot_postgres_wal_ready_segments %s\n' "$ready"
        printf '# HELP shia_chatbot_postgres_wal_metrics_timestamp_seconds Unix time this file was written.\n'
        printf '# TYPE shia_chatbot_postgres_wal_metrics_timestamp_seconds gauge\n'
        printf 'shia_chatbot_postgres_wal_metrics_timestamp_seconds %s\n' "$(date +%s)"
    } > "$tmp"
    mv "$tmp" "$METRICS_DIR/$WAL_METRICS_FILE"
}

# Before a restore, with PostgreSQL up: a commit now (a time target is reached
# at the first commit after it) and its segment archived.
archive_now() {
    sql "SELECT txid_current()" > /dev/null
    segment=$(archive_current_segment)
    log "everything committed so far is archived (up to WAL segment $segment)"
}

refuse() {
    log "refused: $*"
    exit 2
}

# Epoch seconds of a UTC "YYYY-MM-DD HH:MM:SS".
epoch() {
    date -u -d "$1" +%s
}

# The label of the newest backup (any repository) that stopped before EPOCH.
backup_before() {
    info "" "[.backup[] | select(.timestamp.stop < $1)] | sort_by(.timestamp.stop) | last | .label // empty"
}

# Resolve TARGET [--type T] into r_type, r_target (for --target), r_set (for
# --set, empty: pgBackRest's latest), or refuse. Reads only the repositories.
plan() {
    target=${1:-}
    [ -n "$target" ] || refuse "no target: latest, a backup label, a UTC time or a restore point name"
    shift
    r_type=""
    while [ $# -gt 0 ]; do
        case $1 in
            --type)
                [ $# -ge 2 ] || refuse "--type needs one of time, name, immediate, default"
                r_type=$2
                shift
                ;;
            *) refuse "unexpected argument '$1'" ;;
        esac
        shift
    done
    if [ -z "$r_type" ]; then
        case $target in
            latest) r_type=default ;;
            [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9]F*) r_type=immediate ;;
            [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]?[0-9][0-9]:*) r_type='time' ;;
            *) r_type=name ;;
        esac
    fi
    now=$(date +%s)
    labels=$(info "" '.backup[].label')
    [ -n "$labels" ] || refuse "the repositories hold no backup of stanza $PGBACKREST_STANZA"
    r_target="" r_set=""
    case $r_type in
        default)
            [ "$target" = latest ] || refuse "type default recovers to the end of the archive: use target latest"
            ;;
        immediate)
            if [ "$target" != latest ]; then
                printf '%s\n' "$labels" | grep -qx -- "$target" || refuse "no backup labelled '$target' (pgbackrest info)"
                r_set=$target
            fi
            ;;
        time)
            # UTC only: a zone in the target would be one more thing to get wrong at 3 am.
            utc=$(printf '%s\n' "$target" | sed -nE \
                's/^([0-9]{4}-[0-9]{2}-[0-9]{2})[ T]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,6})?(Z|\+00|\+00:00| UTC)?$/\1 \2 \3/p')
            [ -n "$utc" ] || refuse "time '$target': use YYYY-MM-DD HH:MM:SS[.ffffff] in UTC"
            read -r day clock fraction << EOF
$utc
EOF
            t=$(epoch "$day $clock") || refuse "time '$target' is not a valid date"
            [ "$t" -lt "$now" ] || refuse "time '$target' is not in the past"
            r_set=$(backup_before "$t")
            [ -n "$r_set" ] || refuse "time '$target' is before the oldest backup finished (pgbackrest info)"
            r_target="$day $clock$fraction+00"
            ;;
        name)
            stamp=$(printf '%s\n' "$target" | sed -nE \
                's/^pre-migration-[a-z0-9-]+-([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z$/\1-\2-\3 \4:\5:\6/p')
            [ -n "$stamp" ] || refuse "restore point '$target': not one this script made (pre-migration-SLOT-YYYYMMDDTHHMMSSZ)"
            t=$(epoch "$stamp") || refuse "restore point '$target' has no valid time"
            [ "$t" -le "$now" ] || refuse "restore point '$target' is in the future"
            r_set=$(backup_before "$t")
            [ -n "$r_set" ] || refuse "restore point '$target' is older than every backup (pgbackrest info)"
            r_target=$target
            ;;
        *) refuse "type '$r_type': one of time, name, immediate, default" ;;
    esac
}

restore_check() {
    plan "$@"
    printf 'type=%s target=%s backup=%s\n' "$r_type" "${r_target:-end of archive}" "${r_set:-latest}"
}

restore() {
    plan "$@"
    set -- --delta --type="$r_type"
    [ -z "$r_set" ] || set -- "$@" --set="$r_set"
    [ -z "$r_target" ] || set -- "$@" --target="$r_target"
    [ "$r_type" = default ] || set -- "$@" --target-action=promote
    log "restoring backup ${r_set:-latest} into $PGBACKREST_PG1_PATH (type $r_type${r_target:+, target $r_target})"
    pgbr restore "$@" >&2 || die "pgbackrest restore failed; PostgreSQL must stay stopped until a restore succeeds"
    log "restored: PostgreSQL recovers ${r_target:-to the end of the archive} when it starts, then promotes"
}

command=${1:-}
[ $# -eq 0 ] || shift
case $command in
    init)
        if [ "$(id -u)" = 0 ] && [ "${PGBACKREST_REPO1_TYPE:-posix}" = posix ]; then
            # A new volume's root belongs to root; archive-push writes it as postgres.
            mkdir -p "${PGBACKREST_REPO1_PATH:?PGBACKREST_REPO1_PATH is not set}"
            chown "$(stat -c %u:%g "$PGBACKREST_PG1_PATH")" "$PGBACKREST_REPO1_PATH"
        fi
        pgbr stanza-create >&2 || die "pgbackrest stanza-create failed"
        pgbr check >&2 || die "pgbackrest check failed: WAL does not reach every repository"
        ;;
    backup) backup "$@" ;;
    offsite) offsite "$@" ;;
    verify) verify ;;
    metrics) metrics ;;
    archive-now) archive_now ;;
    restore-check) restore_check "$@" ;;
    restore) restore "$@" ;;
    *) die "usage: postgres.sh init | backup REASON | offsite [REASON] | verify | metrics | archive-now | restore-check TARGET [--type T] | restore TARGET [--type T]" ;;
esac
