# PostgreSQL, logical: a portable copy of the app's database, pg_dump in
# custom format read back in full before it counts, and the cluster's roles.
#
# Point-in-time recovery is pgBackRest's job (postgres.sh): its backups are
# the data directory's files, usable only by the same PostgreSQL major version
# on the same platform. A logical copy is worth it where that does not hold:
# a major upgrade (the new version's server is loaded from it; an official
# image carries one version's binaries, so pg_upgrade is not at hand), and
# moving a database off this platform or into another cluster (a scratch
# copy to inspect, another stack). It is not the recovery path: it holds one
# moment, restores slower, and `restore` below brings back the tables, not
# the database's own settings, comment and grants (those need pg_restore
# --create into a cluster without the database).
#
#   sh postgres-dump.sh dump                 BACKUP_STAGING/postgres-dump/ (postgres.dump,
#                                            postgres-globals.sql); prints the folder
#   sh postgres-dump.sh restore [DATABASE]   that dump into DATABASE (default PGDATABASE)
#                                            through a scratch database
#
# Connection from libpq's environment: PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE.
# Optional: PG_RESTORE_JOBS (parallel pg_restore workers, default 2).
set -eu
. "$(dirname "$0")/common.sh"
: "${PGDATABASE:?PGDATABASE is not set}"
: "${BACKUP_STAGING:?BACKUP_STAGING is not set}"
DIR=$BACKUP_STAGING/postgres-dump

dump() {
    mkdir -p "$DIR"
    dump=$DIR/.postgres.dump.tmp
    globals=$DIR/.postgres-globals.sql.tmp
    trap 'rm -f "$dump" "$globals"' EXIT
    pg_dump --format=custom --file="$dump"
    # `pg_restore --list` reads only the table of contents, which a truncated
    # dump still has; writing the whole archive out as SQL reads every block.
    pg_restore --file=/dev/null "$dump" || die "the dump does not read back in full; not keeping it"
    # Roles and tablespaces, for rebuilding a cluster. Without password hashes:
    # off-site copies hold no credentials; passwords come from the stack.
    pg_dumpall --globals-only --no-role-passwords --file="$globals"
    mv "$dump" "$DIR/postgres.dump"
    mv "$globals" "$DIR/postgres-globals.sql"
    trap - EXIT
    printf '%s\n' "$DIR"
}

admin() {
    psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --dbname=postgres --command="$1"
}

# Restore into a scratch database, then put it in place of DATABASE: a dump that
# fails to restore leaves the existing database untouched.
restore() {
    target=${1:-$PGDATABASE}
    case $target in '' | *[!a-z0-9_]*) die "database name '$target': use lowercase letters, digits and _" ;; esac
    [ -f "$DIR/postgres.dump" ] || die "no dump in $DIR"
    scratch=${target}_restoring
    admin "DROP DATABASE IF EXISTS \"$scratch\" WITH (FORCE)"
    admin "CREATE DATABASE \"$scratch\" TEMPLATE template0"
    if ! pg_restore --exit-on-error --jobs="${PG_RESTORE_JOBS:-2}" --dbname="$scratch" "$DIR/postgres.dump"; then
        admin "DROP DATABASE IF EXISTS \"$scratch\" WITH (FORCE)"
        die "pg_restore failed; $target is unchanged"
    fi
    # FORCE ends the app's sessions; it reconnects to the restored database.
    admin "DROP DATABASE IF EXISTS \"$target\" WITH (FORCE)"
    admin "ALTER DATABASE \"$scratch\" RENAME TO \"$target\""
    log "restored $target from $DIR/postgres.dump"
}

case "${1:-}" in
    dump) dump ;;
    restore) restore "${2:-}" ;;
    *) die "usage: postgres-dump.sh dump | restore [DATABASE]" ;;
esac
