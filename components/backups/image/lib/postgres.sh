# PostgreSQL: pg_dump in custom format, read back in full before it counts.
#
#   sh postgres.sh backup DIR              DIR/postgres.dump, DIR/postgres-globals.sql
#   sh postgres.sh restore DIR [DATABASE]  into DATABASE (default PGDATABASE)
#
# Connection from libpq's environment: PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE.
# Optional: PG_RESTORE_JOBS (parallel pg_restore workers, default 2).
set -eu
. "$(dirname "$0")/common.sh"
: "${PGDATABASE:?PGDATABASE is not set}"

backup() {
    dump=$1/postgres.dump.tmp
    globals=$1/postgres-globals.sql.tmp
    trap 'rm -f "$dump" "$globals"' EXIT
    pg_dump --format=custom --file="$dump"
    # `pg_restore --list` reads only the table of contents, which a truncated
    # dump still has; writing the whole archive out as SQL reads every block.
    pg_restore --file=/dev/null "$dump" || die "the dump does not read back in full; not keeping it"
    # Roles and tablespaces, for rebuilding a cluster. Without password hashes:
    # off-site copies hold no credentials; passwords come from the stack.
    pg_dumpall --globals-only --no-role-passwords --file="$globals"
    mv "$dump" "$1/postgres.dump"
    mv "$globals" "$1/postgres-globals.sql"
    trap - EXIT
}

admin() {
    psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --dbname=postgres --command="$1"
}

# Restore into a scratch database, then put it in place of DATABASE: a dump that
# fails to restore leaves the existing database untouched.
restore() {
    target=${2:-$PGDATABASE}
    case $target in '' | *[!a-z0-9_]*) die "database name '$target': use lowercase letters, digits and _" ;; esac
    scratch=${target}_restoring
    admin "DROP DATABASE IF EXISTS \"$scratch\" WITH (FORCE)"
    admin "CREATE DATABASE \"$scratch\" TEMPLATE template0"
    if ! pg_restore --exit-on-error --jobs="${PG_RESTORE_JOBS:-2}" --dbname="$scratch" "$1/postgres.dump"; then
        admin "DROP DATABASE IF EXISTS \"$scratch\" WITH (FORCE)"
        die "pg_restore failed; $target is unchanged"
    fi
    # FORCE ends the app's sessions; it reconnects to the restored database.
    admin "DROP DATABASE IF EXISTS \"$target\" WITH (FORCE)"
    admin "ALTER DATABASE \"$scratch\" RENAME TO \"$target\""
    log "restored $target from ${1##*/}"
}

case "${1:-}" in
    backup) backup "$2" ;;
    restore) restore "$2" "${3:-}" ;;
    *) die "usage: postgres.sh backup DIR | restore DIR [DATABASE]" ;;
esac
