# Qdrant: a snapshot of the collection through the API, stored with restic.
#
#   sh qdrant.sh backup REASON   snapshot the collection, download it, check it
#                                against Qdrant's checksum and as a tar, then
#                                BACKUP_STAGING/qdrant/{collection.snapshot,
#                                collection.info} becomes a restic snapshot, read
#                                back in full before retention. Prints its id.
#                                A collection that does not exist yet (a new
#                                stack) is no failure: it is logged and no
#                                snapshot is recorded (prints nothing).
#   sh qdrant.sh restore TARGET  TARGET `latest` or a snapshot id: upload and
#                                recover with priority=snapshot (the collection
#                                becomes exactly the snapshot), then the
#                                collection must count the points it had.
#   sh qdrant.sh offsite | verify   see restic.sh
#
# QDRANT_URL (http://host:port), QDRANT_API_KEY, QDRANT_COLLECTION.
# collection.info holds collection=, points= (the exact count, the same just
# before and just after the snapshot) and sha256= (of the snapshot file).
set -eu
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/restic.sh"
: "${QDRANT_URL:?QDRANT_URL is not set}" "${QDRANT_API_KEY:?QDRANT_API_KEY is not set}"
: "${QDRANT_COLLECTION:?QDRANT_COLLECTION is not set}"
collection=/collections/$QDRANT_COLLECTION
staging=$(staging_dir qdrant)

# METHOD PATH [curl options]. The api-key header goes to curl as config on stdin,
# never on its command line.
api() {
    method=$1 path=$2
    shift 2
    printf 'header = "api-key: %s"\n' "$QDRANT_API_KEY" |
        curl --config - --silent --show-error --fail-with-body -X "$method" "$QDRANT_URL$path" "$@"
}

# The exact number of points in the collection.
points() {
    reply=$(api POST "$collection/points/count" -H 'Content-Type: application/json' --data '{"exact":true}') ||
        die "cannot count the points of $QDRANT_COLLECTION: $reply"
    count=$(printf '%s' "$reply" | jq -r '.result.count // empty')
    [ -n "$count" ] || die "no count in Qdrant's reply: $reply"
    printf '%s\n' "$count"
}

# A snapshot on the server whose point count did not change while it was taken,
# so collection.info can say what it holds; sets name, checksum and count.
# Three tries, then it fails: the collection is being written to.
take_snapshot() {
    for attempt in 1 2 3; do
        count=$(points)
        reply=$(api POST "$collection/snapshots?wait=true") || die "snapshot of $QDRANT_COLLECTION refused: $reply"
        name=$(printf '%s' "$reply" | jq -r '.result.name // empty')
        checksum=$(printf '%s' "$reply" | jq -r '.result.checksum // empty')
        if [ -z "$name" ] || [ -z "$checksum" ]; then
            die "no snapshot name and checksum in Qdrant's reply: $reply"
        fi
        after=$(points)
        if [ "$after" = "$count" ]; then
            return 0
        fi
        log "try $attempt: $QDRANT_COLLECTION went from $count to $after points during the snapshot"
        drop_snapshot
    done
    die "$QDRANT_COLLECTION kept changing while snapshots were taken"
}

# The server's copy only fills its disk once downloaded (or useless).
drop_snapshot() {
    api DELETE "$collection/snapshots/$name?wait=true" > /dev/null ||
        log "warning: snapshot $name is still on the Qdrant server"
}

backup() {
    reply=$(api GET "$collection/exists") || die "cannot ask Qdrant at $QDRANT_URL about $QDRANT_COLLECTION: $reply"
    case $(printf '%s' "$reply" | jq -r '.result.exists') in
        true) ;;
        false)
            log "collection $QDRANT_COLLECTION does not exist yet: nothing to back up, no snapshot recorded"
            return 0
            ;;
        *) die "unexpected answer from Qdrant: $reply" ;;
    esac
    rm -rf "$staging"
    mkdir -p "$staging"
    trap 'rm -rf "$staging"' EXIT

    take_snapshot
    api GET "$collection/snapshots/$name" --output "$staging/collection.snapshot" ||
        { drop_snapshot; die "download of snapshot $name failed"; }
    drop_snapshot
    [ "$(sha256 "$staging/collection.snapshot")" = "$checksum" ] ||
        die "snapshot $name does not match the checksum Qdrant gave"
    tar -tf "$staging/collection.snapshot" > /dev/null || die "snapshot $name is not a readable archive"
    printf 'collection=%s\npoints=%s\nsha256=%s\n' "$QDRANT_COLLECTION" "$count" "$checksum" \
        > "$staging/collection.info"
    log "snapshot $name checked: $count points"

    id=$(snapshot_create qdrant "$1")
    snapshot_matches_staging "$id" qdrant || {
        snapshot_discard "$RESTIC_REPOSITORY" "$id"
        die "snapshot $id does not read back as the Qdrant snapshot"
    }
    apply_retention "$RESTIC_REPOSITORY" qdrant || die "retention failed (snapshot $id is stored and verified)"
    printf '%s\n' "$id"
}

restore() {
    find_snapshot qdrant "$1" || die "no Qdrant backup '$1' in the restic repositories: nothing to restore" \
        "(a backup while $QDRANT_COLLECTION did not exist records no snapshot)"
    work=$(mktemp -d "$BACKUP_STAGING/.restore-qdrant.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    checked restic -r "$found_repo" restore "$found_id" --target "$work" --verify >&2 ||
        die "cannot restore snapshot $found_id"
    files=$work$staging
    expected=$(sed -n 's/^points=//p' "$files/collection.info")
    checksum=$(sed -n 's/^sha256=//p' "$files/collection.info")
    [ "$(sha256 "$files/collection.snapshot")" = "$checksum" ] ||
        die "the Qdrant snapshot in $found_id does not match its checksum"

    reply=$(api POST "$collection/snapshots/upload?priority=snapshot&wait=true&checksum=$checksum" \
        --form "snapshot=@$files/collection.snapshot") || die "recovery of $QDRANT_COLLECTION failed: $reply"
    [ "$(printf '%s' "$reply" | jq -r '.status')" = ok ] || die "recovery of $QDRANT_COLLECTION failed: $reply"
    actual=$(points)
    [ "$actual" = "$expected" ] ||
        die "after the recovery $QDRANT_COLLECTION holds $actual points, the backup $expected"
    log "restored $QDRANT_COLLECTION from snapshot $found_id: $actual points"
}

case "${1:-}" in
    backup) backup "${2:?usage: qdrant.sh backup REASON}" ;;
    restore) restore "${2:-latest}" ;;
    offsite) offsite_sync qdrant ;;
    verify) verify_repositories ;;
    *) die "usage: qdrant.sh backup REASON | restore latest|ID | offsite | verify" ;;
esac
