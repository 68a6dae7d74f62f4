# Qdrant: a snapshot of the collection through the API, downloaded and checked.
#
#   sh qdrant.sh backup DIR    DIR/qdrant.snapshot; the server's copy is deleted
#   sh qdrant.sh restore DIR   upload and recover with priority=snapshot: the
#                              collection becomes exactly the snapshot
#
# QDRANT_URL (http://host:port), QDRANT_API_KEY, QDRANT_COLLECTION.
set -eu
. "$(dirname "$0")/common.sh"
: "${QDRANT_URL:?QDRANT_URL is not set}" "${QDRANT_API_KEY:?QDRANT_API_KEY is not set}"
: "${QDRANT_COLLECTION:?QDRANT_COLLECTION is not set}"
collection=/collections/$QDRANT_COLLECTION

# METHOD PATH [curl options]. The api-key header goes to curl as config on stdin,
# never on its command line.
api() {
    method=$1 path=$2
    shift 2
    printf 'header = "api-key: %s"\n' "$QDRANT_API_KEY" |
        curl --config - --silent --show-error --fail-with-body -X "$method" "$QDRANT_URL$path" "$@"
}

# A string field of a JSON reply (Qdrant's replies are flat enough for sed).
field() {
    printf '%s' "$2" | sed -n "s/.*\"$1\" *: *\"\([^\"]*\)\".*/\1/p"
}

backup() {
    out=$1/qdrant.snapshot.tmp
    trap 'rm -f "$out"' EXIT
    reply=$(api POST "$collection/snapshots?wait=true") || die "snapshot of $QDRANT_COLLECTION refused: $reply"
    name=$(field name "$reply")
    [ -n "$name" ] || die "no snapshot name in Qdrant's reply: $reply"
    checksum=$(field checksum "$reply")
    api GET "$collection/snapshots/$name" --output "$out" || die "download of snapshot $name failed"
    # The snapshot is in our set now; the server's copy would only fill its disk.
    api DELETE "$collection/snapshots/$name?wait=true" > /dev/null ||
        log "warning: snapshot $name is still on the Qdrant server"
    if [ -n "$checksum" ] && [ "$(sha256 "$out")" != "$checksum" ]; then
        die "snapshot $name does not match the checksum Qdrant gave"
    fi
    tar -tf "$out" > /dev/null || die "snapshot $name is not a readable archive"
    mv "$out" "$1/qdrant.snapshot"
    trap - EXIT
}

restore() {
    snapshot=$1/qdrant.snapshot
    reply=$(api POST "$collection/snapshots/upload?priority=snapshot&wait=true&checksum=$(sha256 "$snapshot")" \
        --form "snapshot=@$snapshot") || die "recovery of $QDRANT_COLLECTION failed: $reply"
    case $reply in *'"status":"ok"'*) ;; *) die "recovery of $QDRANT_COLLECTION failed: $reply" ;; esac
    log "restored $QDRANT_COLLECTION from ${1##*/}"
}

case "${1:-}" in
    backup) backup "$2" ;;
    restore) restore "$2" ;;
    *) die "usage: qdrant.sh backup DIR | restore DIR" ;;
esac
