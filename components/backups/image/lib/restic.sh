# restic for the services backed up as files: redis, qdrant and minio.
# Sourced by their scripts after common.sh, never run. POSIX sh.
#
# A service puts its files in BACKUP_STAGING/<service>/ (a fixed path, which is
# how restic groups one service's snapshots) and `snapshot_create` stores that
# folder in RESTIC_REPOSITORY as one snapshot, host BACKUP_ENV, tags
# service=<service> and reason=<reason>. `apply_retention` keeps, per service,
# the newest snapshot plus RESTIC_KEEP_HOURLY hourly and RESTIC_KEEP_DAILY daily
# ones; a service script calls it only after its own backup verified, so a
# service that keeps failing keeps its last good snapshots whatever the others do.
#
# Environment: RESTIC_REPOSITORY, RESTIC_PASSWORD, RESTIC_CACHE_DIR (read by
# restic itself), BACKUP_STAGING, BACKUP_ENV, RESTIC_KEEP_HOURLY,
# RESTIC_KEEP_DAILY; off-site: RESTIC_OFFSITE_REPOSITORY (same password; an s3:
# repository reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
# Tools: restic (0.14), jq.

: "${RESTIC_REPOSITORY:?RESTIC_REPOSITORY is not set}" "${RESTIC_PASSWORD:?RESTIC_PASSWORD is not set}"
: "${BACKUP_STAGING:?BACKUP_STAGING is not set}" "${BACKUP_ENV:?BACKUP_ENV is not set}"

staging_dir() {
    printf '%s/%s\n' "$BACKUP_STAGING" "$1"
}

# Run TOOL ARGS...: stdout passes through, stderr goes to the log and stays in
# $tool_errors. Fails when the tool exits non-zero, and also when it exits 0
# having written anything to stderr but restic's notice of a retried request:
# mc reports a failed object that way, restic a snapshot it skipped ("Ignoring").
checked() {
    _stderr=$(mktemp)
    _status=0
    "$@" 2> "$_stderr" || _status=$?
    tool_errors=$(cat "$_stderr")
    rm -f "$_stderr"
    [ -z "$tool_errors" ] || printf '%s\n' "$tool_errors" | sed "s|^|${1##*/}: |" >&2
    [ "$_status" = 0 ] || return "$_status"
    if printf '%s\n' "$tool_errors" | grep -v -e '^$' -e 'returned error, retrying after' | grep -q .; then
        log "error: $1 $2 wrote errors and exited 0; not trusting it"
        return 1
    fi
}

# restic -r REPO ARGS..., once more after `restic unlock` if the repository is
# locked: a run killed half-way (a replaced container) leaves its lock, which
# restic never ignores; unlock removes only locks whose process is gone or that
# are older than 30 minutes, so a run still going keeps its lock.
restic_run() {
    _repo=$1
    shift
    checked restic -r "$_repo" "$@" && return 0
    case $tool_errors in *"repository is already locked"*) ;; *) return 1 ;; esac
    checked restic -r "$_repo" unlock >&2 || return 1
    checked restic -r "$_repo" "$@"
}

# Whether restic's ERRORS say that nothing is at the repository's place yet
# (a first backup, a new bucket), as opposed to a repository that is there but
# will not open (wrong password or credentials, unreachable): only the first
# may be initialised.
no_repository() {
    case $1 in
        *"unable to open config file: stat "*"no such file or directory"* | \
            *"unable to open config file: Stat: The specified key does not exist"* | \
            *"unable to open config file: Stat: The specified bucket does not exist"*) return 0 ;;
    esac
    return 1
}

# Create REPO; further arguments go to `restic init`.
repo_create() {
    _repo=$1
    shift
    log "no restic repository at $_repo yet: creating it"
    checked restic -r "$_repo" init "$@" >&2
}

# Forget SNAPSHOT in REPO now: it failed verification, and retention must never
# count it as a good backup (nor `restore latest` pick it).
snapshot_discard() {
    log "forgetting snapshot $2: it did not verify"
    checked restic -r "$1" forget "$2" >&2 || log "warning: could not forget snapshot $2 in $1"
}

# Store SERVICE's staging folder as a new snapshot tagged with REASON; prints
# its id. A snapshot restic made but called incomplete (exit 3: a file it could
# not read) is forgotten again.
snapshot_create() {
    [ -f "$RESTIC_REPOSITORY/config" ] || repo_create "$RESTIC_REPOSITORY" ||
        die "cannot create the restic repository $RESTIC_REPOSITORY"
    _status=0
    _out=$(restic_run "$RESTIC_REPOSITORY" backup --json --host "$BACKUP_ENV" \
        --tag "service=$1" --tag "reason=$2" "$(staging_dir "$1")") || _status=$?
    _id=$(printf '%s\n' "$_out" | jq -r 'select(.message_type == "summary") | .snapshot_id')
    if [ "$_status" != 0 ]; then
        [ -z "$_id" ] || snapshot_discard "$RESTIC_REPOSITORY" "$_id"
        die "restic backup of $(staging_dir "$1") failed"
    fi
    [ -n "$_id" ] || die "restic backup printed no snapshot id"
    printf '%s\n' "$_id"
}

# Fail unless snapshot ID of SERVICE reads back exactly as its staging folder
# (same files, same bytes). For the services whose staging is a file or two.
snapshot_matches_staging() {
    _dir=$(staging_dir "$2")
    _back=$(mktemp -d "$BACKUP_STAGING/.check-$2.XXXXXX")
    _ok=""
    # restore --verify reads the written files back against the snapshot.
    if checked restic -r "$RESTIC_REPOSITORY" restore "$1" --target "$_back" --verify >&2 &&
        diff -r "$_dir" "$_back$_dir" >&2; then
        _ok=yes
    fi
    rm -rf "$_back"
    [ -n "$_ok" ]
}

# The retention policy, applied to SERVICE's snapshots in REPO only.
apply_retention() {
    : "${RESTIC_KEEP_HOURLY:?RESTIC_KEEP_HOURLY is not set}" "${RESTIC_KEEP_DAILY:?RESTIC_KEEP_DAILY is not set}"
    restic_run "$1" forget --host "$BACKUP_ENV" --path "$(staging_dir "$2")" --group-by host,paths \
        --keep-last 1 --keep-hourly "$RESTIC_KEEP_HOURLY" --keep-daily "$RESTIC_KEEP_DAILY" --prune >&2
}

# SERVICE's snapshots in REPO as a JSON array, oldest first.
snapshots_of() {
    restic_run "$1" snapshots --json --host "$BACKUP_ENV" --path "$(staging_dir "$2")"
}

# Bring the off-site repository up to date for SERVICE: copy its snapshots there
# (creating the repository with the local one's chunker parameters, so copied
# and later data deduplicate), check that its newest snapshot there is the local
# newest (same tree id: restic ids are content hashes, so the same content),
# apply the same retention there, then check the repository's structure.
offsite_sync() {
    : "${RESTIC_OFFSITE_REPOSITORY:?RESTIC_OFFSITE_REPOSITORY is not set}"
    # The local repository is the source of `copy` and of the chunker parameters
    # of a new off-site one; both have the same password.
    RESTIC_FROM_REPOSITORY=$RESTIC_REPOSITORY RESTIC_FROM_PASSWORD=$RESTIC_PASSWORD
    export RESTIC_FROM_REPOSITORY RESTIC_FROM_PASSWORD
    if ! restic_run "$RESTIC_OFFSITE_REPOSITORY" copy --host "$BACKUP_ENV" --path "$(staging_dir "$1")" >&2; then
        no_repository "$tool_errors" || die "cannot copy $1 to the off-site repository $RESTIC_OFFSITE_REPOSITORY"
        repo_create "$RESTIC_OFFSITE_REPOSITORY" --copy-chunker-params ||
            die "cannot create the off-site repository $RESTIC_OFFSITE_REPOSITORY"
        restic_run "$RESTIC_OFFSITE_REPOSITORY" copy --host "$BACKUP_ENV" --path "$(staging_dir "$1")" >&2 ||
            die "cannot copy $1 to the off-site repository $RESTIC_OFFSITE_REPOSITORY"
    fi
    _list=$(snapshots_of "$RESTIC_REPOSITORY" "$1") || die "cannot list the local snapshots of $1"
    _local=$(printf '%s' "$_list" | jq -r 'max_by(.time) | .tree // empty')
    _list=$(snapshots_of "$RESTIC_OFFSITE_REPOSITORY" "$1") || die "cannot list the off-site snapshots of $1"
    _remote=$(printf '%s' "$_list" | jq -r 'max_by(.time) | .tree // empty')
    [ "$_local" = "$_remote" ] ||
        die "the newest off-site snapshot of $1 is not the local newest (tree ${_remote:-none}, local ${_local:-none})"
    if [ -z "$_local" ]; then
        log "$1: no snapshot to copy off-site yet"
    fi
    apply_retention "$RESTIC_OFFSITE_REPOSITORY" "$1" || die "retention in $RESTIC_OFFSITE_REPOSITORY failed"
    restic_run "$RESTIC_OFFSITE_REPOSITORY" check >&2 || die "restic check of $RESTIC_OFFSITE_REPOSITORY failed"
}

# The snapshot of SERVICE to restore for TARGET (`latest` or a snapshot id):
# sets found_repo and found_id. The local repository first; the off-site one
# when the local one has no such snapshot or cannot be opened (a lost volume).
find_snapshot() {
    found_repo="" found_id=""
    for _repo in "$RESTIC_REPOSITORY" ${RESTIC_OFFSITE_REPOSITORY:+"$RESTIC_OFFSITE_REPOSITORY"}; do
        if ! _list=$(snapshots_of "$_repo" "$1"); then
            log "cannot read $_repo; trying the next repository"
            continue
        fi
        found_id=$(printf '%s' "$_list" | jq -r --arg t "$2" '
            if $t == "latest" then max_by(.time) | .id // empty
            else map(select(.id | startswith($t))) | if length == 1 then .[0].id else empty end end')
        if [ -n "$found_id" ]; then
            # shellcheck disable=SC2034 # read by the service scripts
            found_repo=$_repo
            log "restoring $1 from snapshot $found_id in $_repo"
            return 0
        fi
    done
    return 1
}

# Deep check of the repositories: every pack of the local one is read (local
# disk: cheap, and the likeliest place for a damaged file); the off-site one a
# seventh per run, the next seventh each time (counted in BACKUP_DIR), so every
# pack is downloaded once every 7 runs at a seventh of the egress per run.
verify_repositories() {
    restic_run "$RESTIC_REPOSITORY" check --read-data >&2 || die "restic check of $RESTIC_REPOSITORY found errors"
    [ -n "${RESTIC_OFFSITE_REPOSITORY:-}" ] || return 0
    _counter=$BACKUP_DIR/restic-offsite-check-group
    _group=$(cat "$_counter" 2> /dev/null || echo 0)
    _group=$((_group % 7 + 1))
    restic_run "$RESTIC_OFFSITE_REPOSITORY" check --read-data-subset="$_group/7" >&2 ||
        die "restic check of $RESTIC_OFFSITE_REPOSITORY (part $_group/7) found errors"
    echo "$_group" > "$_counter"
}
