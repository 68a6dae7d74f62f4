# MinIO: the documents bucket, mirrored with mc.
#
#   sh minio.sh backup DIR    update BACKUP_DIR/minio/<bucket>, record it in DIR/minio.manifest
#   sh minio.sh restore DIR   copy the mirror back into the bucket
#
# One running mirror, not a copy per set: documents are written once and read
# many times, and a full copy per run would multiply the largest data by the
# number of sets. Objects deleted from the bucket stay in the mirror (no
# --remove), so a restore brings them back; older versions live off-site, where
# the bucket is versioned.
#
# MINIO_BUCKET; the `minio` alias comes from MC_HOST_minio (credentials in the
# environment, never in a file or on a command line).
set -eu
. "$(dirname "$0")/common.sh"
: "${MINIO_BUCKET:?MINIO_BUCKET is not set}"
mirror=$BACKUP_DIR/minio/$MINIO_BUCKET

backup() {
    mkdir -p "$mirror"
    mc mirror --quiet --overwrite "minio/$MINIO_BUCKET" "$mirror" || die "mirror of $MINIO_BUCKET failed"
    listing=$(mc ls --recursive "minio/$MINIO_BUCKET") || die "cannot list $MINIO_BUCKET"
    remote=$(printf '%s\n' "$listing" | sed '/^$/d' | wc -l)
    copied=$(find "$mirror" -type f | wc -l)
    [ "$copied" -ge "$remote" ] || die "the mirror has $copied objects, $MINIO_BUCKET has $remote"
    printf 'bucket=%s\nobjects=%s\nmirror=%s\n' "$MINIO_BUCKET" "$remote" "$mirror" > "$1/minio.manifest"
}

restore() {
    [ -d "$mirror" ] || die "no mirror of $MINIO_BUCKET in $mirror"
    mc mirror --quiet --overwrite "$mirror" "minio/$MINIO_BUCKET" || die "copy back into $MINIO_BUCKET failed"
    log "restored $MINIO_BUCKET from $mirror"
}

case "${1:-}" in
    backup) backup "$2" ;;
    restore) restore "$2" ;;
    *) die "usage: minio.sh backup DIR | restore DIR" ;;
esac
