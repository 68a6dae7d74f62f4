# Off-site copies with mc. OFFSITE_TARGET is `offsite/<bucket>`; the `offsite`
# alias comes from MC_HOST_offsite: AWS S3 in stage and prod, the stack's own
# MinIO in dev. Nothing here deletes: expiry is the bucket's lifecycle rule.
#
#   sh offsite.sh push SET_DIR   the set to sets/<name>/; its MinIO mirror to minio/<bucket>/
#   sh offsite.sh fetch NAME     sets/<name>/ back into BACKUP_DIR/sets/<name>
set -eu
. "$(dirname "$0")/common.sh"
: "${OFFSITE_TARGET:?OFFSITE_TARGET is not set}"

push() {
    name=${1##*/}
    mc mirror --quiet "$1" "$OFFSITE_TARGET/sets/$name" || die "copy of $name to $OFFSITE_TARGET failed"
    if [ -f "$1/minio.manifest" ]; then
        bucket=$(sed -n 's/^bucket=//p' "$1/minio.manifest")
        mc mirror --quiet --overwrite "$BACKUP_DIR/minio/$bucket" "$OFFSITE_TARGET/minio/$bucket" ||
            die "copy of the $bucket mirror to $OFFSITE_TARGET failed"
    fi
    log "$name is off-site in $OFFSITE_TARGET"
}

fetch() {
    partial=$SETS_DIR/.$1.partial
    rm -rf "$partial"
    mkdir -p "$partial"
    mc mirror --quiet "$OFFSITE_TARGET/sets/$1" "$partial" || { rm -rf "$partial"; die "no set $1 in $OFFSITE_TARGET"; }
    mv "$partial" "$SETS_DIR/$1"
    log "fetched $1 from $OFFSITE_TARGET"
}

case "${1:-}" in
    push) push "$2" ;;
    fetch) fetch "$2" ;;
    *) die "usage: offsite.sh push SET_DIR | fetch NAME" ;;
esac
