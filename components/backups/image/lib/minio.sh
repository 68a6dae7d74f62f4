# MinIO: the documents bucket, mirrored into staging and stored with restic.
#
#   sh minio.sh backup REASON   `mc mirror --remove` makes BACKUP_STAGING/minio
#                               exactly the bucket (kept between runs, so only
#                               changed objects are fetched), checked by content
#                               against the bucket's listing; the folder becomes
#                               a restic snapshot, whose listing must be the
#                               bucket's (names and sizes) before retention.
#                               History lives in the snapshots: a document
#                               deleted from the bucket is still in the older
#                               ones. An empty bucket gives an empty snapshot.
#                               Prints the snapshot id.
#   sh minio.sh restore TARGET  TARGET `latest` or a snapshot id: the snapshot's
#                               objects are copied into the bucket (created if
#                               missing; objects it has that the snapshot lacks
#                               stay) and must then be there with that content.
#   sh minio.sh offsite | verify   see restic.sh
#
# "By content": a single-part object's ETag is its MD5, compared with the MD5 of
# the file. A multipart ETag is the MD5 of the parts' MD5s plus "-<parts>";
# the file's is computed for the part sizes clients use (5, 8, 16 MiB, and the
# size over the part count rounded up to a MiB) and must equal it; if none
# fits, the object is downloaded once more and the two MD5s compared.
# (ETags of objects encrypted by the server are not MD5s: this bucket is not.)
#
# MINIO_BUCKET; the `minio` alias comes from MC_HOST_minio (credentials in the
# environment, never in a file or on a command line). Tools: mc, jq. mc always
# runs with --quiet or --json, so whatever it writes to stderr is an error.
set -eu
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/restic.sh"
: "${MINIO_BUCKET:?MINIO_BUCKET is not set}"
bucket=minio/$MINIO_BUCKET
staging=$(staging_dir minio)
tab=$(printf '\t')
MIB=1048576

# The bucket's objects, as mc's JSON entries (key, size, etag), into FILE.
list_bucket() {
    checked mc ls --recursive --json "$bucket/" > "$1" || die "cannot list $MINIO_BUCKET"
    # With --json, mc reports a failure as an entry of its listing.
    jq -e -s 'all(.[]; .status == "success")' "$1" > /dev/null ||
        die "listing $MINIO_BUCKET failed: $(jq -c -s 'map(select(.status != "success"))' "$1")"
    # Keys are read one a line below.
    if jq -e -s 'any(.[]; .key | contains("\n"))' "$1" > /dev/null; then
        die "$MINIO_BUCKET has an object whose name holds a line break: not backed up by this script"
    fi
}

md5_of() {
    sum=$(md5sum < "$1")
    printf '%s\n' "${sum%% *}"
}

# The bytes written as HEX digits (printf's octal escapes are the portable way).
hex_bytes() {
    # shellcheck disable=SC2059 # the escapes are the format on purpose
    printf "$(printf '%s' "$1" | awk -v d=0123456789abcdef '{
        for (i = 1; i <= length($0); i += 2)
            printf "\\%03o", (index(d, substr($0, i, 1)) - 1) * 16 + index(d, substr($0, i + 1, 1)) - 1
    }')"
}

# The multipart ETag of FILE uploaded in PARTS parts of MIB mebibytes (read a
# MiB at a time: a part can be large).
multipart_etag() {
    part=0 digests=""
    while [ "$part" -lt "$3" ]; do
        digests=$digests$(dd if="$1" bs=$MIB skip=$((part * $2)) count="$2" 2> /dev/null | md5sum | cut -d ' ' -f 1)
        part=$((part + 1))
    done
    printf '%s-%s\n' "$(hex_bytes "$digests" | md5sum | cut -d ' ' -f 1)" "$3"
}

# FILE against the multipart ETAG of an object of SIZE bytes, for each part size
# a client would have used; fails when none gives that ETag.
multipart_matches() {
    parts=${2##*-}
    for mib in 5 8 16 $((($3 + parts * MIB - 1) / (parts * MIB))); do
        size=$((mib * MIB))
        # The part size must give exactly that many parts.
        if [ $(((parts - 1) * size)) -lt "$3" ] && [ "$3" -le $((parts * size)) ] &&
            [ "$(multipart_etag "$1" "$mib" "$parts")" = "$2" ]; then
            return 0
        fi
    done
    return 1
}

# FILE against the object KEY read once more.
fetched_matches() {
    checked mc cat --quiet "$bucket/$2" > "$work/fetched" || return 1
    fetched=$(md5_of "$work/fetched")
    rm -f "$work/fetched"
    [ "$fetched" = "$(md5_of "$1")" ]
}

same_content() {
    case $2 in
        *-*)
            [ "$(stat -c %s "$1")" = "$3" ] || return 1
            multipart_matches "$1" "$2" "$3" && return 0
            log "$4: no usual part size gives its ETag $2; comparing with a second download"
            fetched_matches "$1" "$4"
            ;;
        *) [ "$(md5_of "$1")" = "$2" ] ;;
    esac
}

# DIR against the bucket LISTING, by content. Prints "<problem>\t<key>" for each
# object whose file differs ("differs"), each file that is no object ("not in
# the bucket") and, with MODE exact, each object without a file ("not staged").
differences() {
    (cd "$1" && find . -type f) | sed 's|^\./||' | jq -r -R -n --slurpfile objects "$2" '
        ([$objects[] | select(.type == "file") | {key: .key, value: .}] | from_entries) as $bucket
        | ($bucket[] | [.etag, (.size | tostring), .key] | join("\t")),
          (inputs | select($bucket[.] == null) | "-\t-\t" + .)' |
        while IFS=$tab read -r etag size key; do
            if [ "$etag" = - ]; then
                printf 'not in the bucket\t%s\n' "$key"
            elif [ ! -f "$1/$key" ]; then
                [ "$3" != exact ] || printf 'not staged\t%s\n' "$key"
            elif ! same_content "$1/$key" "$etag" "$size" "$key"; then
                printf 'differs\t%s\n' "$key"
            fi
        done
}

mirror() {
    checked mc mirror --remove --overwrite --quiet "$bucket" "$staging" >&2 || die "mirror of $MINIO_BUCKET failed"
}

# Mirror, then compare staging with a listing taken after it (in $work/objects.json).
mirror_and_compare() {
    mirror
    list_bucket "$work/objects.json"
    differences "$staging" "$work/objects.json" exact > "$work/problems"
}

# Fail unless snapshot ID lists exactly the objects of $work/objects.json, sizes included.
snapshot_lists_bucket() {
    checked restic -r "$RESTIC_REPOSITORY" ls --json "$1" > "$work/snapshot.json" || return 1
    jq -r -n --slurpfile objects "$work/objects.json" --slurpfile nodes "$work/snapshot.json" --arg dir "$staging/" '
        ([$objects[] | select(.type == "file") | {key: .key, value: .size}] | from_entries) as $bucket
        | ([$nodes[] | select(.struct_type == "node" and .type == "file")
            | {key: (.path | ltrimstr($dir)), value: .size}] | from_entries) as $snapshot
        | ($bucket + $snapshot | keys[]) | select($bucket[.] != $snapshot[.])
        | "  \(.): \($bucket[.] // "absent") bytes in the bucket, \($snapshot[.] // "absent") in the snapshot"' \
        > "$work/unlisted"
    [ ! -s "$work/unlisted" ] || { cat "$work/unlisted" >&2; return 1; }
}

backup() {
    mkdir -p "$staging"
    work=$(mktemp -d "$BACKUP_STAGING/.minio.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    mirror_and_compare
    if [ -s "$work/problems" ]; then
        # Objects written during the mirror show here too; one more pass takes them.
        log "staging differs from $MINIO_BUCKET; mirroring once more:"
        sed 's/^/  /' "$work/problems" >&2
        # mc mirror compares sizes and times, not content: a bad copy goes first.
        while IFS=$tab read -r problem key; do
            [ "$problem" != differs ] || rm -f "$staging/$key"
        done < "$work/problems"
        mirror_and_compare
        if [ -s "$work/problems" ]; then
            sed 's/^/  /' "$work/problems" >&2
            die "the staged copy of $MINIO_BUCKET does not match the bucket ($(wc -l < "$work/problems") objects)"
        fi
    fi
    objects=$(jq -s 'map(select(.type == "file")) | length' "$work/objects.json")

    id=$(snapshot_create minio "$1")
    snapshot_lists_bucket "$id" || {
        snapshot_discard "$RESTIC_REPOSITORY" "$id"
        die "snapshot $id does not list the objects of $MINIO_BUCKET"
    }
    apply_retention "$RESTIC_REPOSITORY" minio || die "retention failed (snapshot $id is stored and verified)"
    log "$MINIO_BUCKET: $objects objects in snapshot $id"
    printf '%s\n' "$id"
}

restore() {
    find_snapshot minio "$1" || die "no MinIO backup '$1' in the restic repositories: nothing to restore"
    work=$(mktemp -d "$BACKUP_STAGING/.restore-minio.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    checked restic -r "$found_repo" restore "$found_id" --target "$work/files" --verify >&2 ||
        die "cannot restore snapshot $found_id"
    files=$work/files$staging
    mkdir -p "$files"  # an empty bucket's snapshot has no files
    checked mc mb --quiet --ignore-existing "$bucket" >&2 || die "cannot create $MINIO_BUCKET"
    # cp, not mirror: mirror skips an object of the same size whatever its content.
    checked mc cp --recursive --quiet "$files/" "$bucket/" >&2 || die "copy into $MINIO_BUCKET failed"
    list_bucket "$work/objects.json"
    differences "$files" "$work/objects.json" restored > "$work/problems"
    if [ -s "$work/problems" ]; then
        sed 's/^/  /' "$work/problems" >&2
        die "$MINIO_BUCKET does not hold the snapshot's objects ($(wc -l < "$work/problems") differ)"
    fi
    log "restored $(find "$files" -type f | wc -l) objects into $MINIO_BUCKET from snapshot $found_id"
}

case "${1:-}" in
    backup) backup "${2:?usage: minio.sh backup REASON}" ;;
    restore) restore "${2:-latest}" ;;
    offsite) offsite_sync minio ;;
    verify) verify_repositories ;;
    *) die "usage: minio.sh backup REASON | restore latest|ID | offsite | verify" ;;
esac
