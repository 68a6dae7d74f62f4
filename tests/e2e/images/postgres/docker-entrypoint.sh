#!/usr/bin/env bash
# The postgres stand-in's entrypoint: the official image's documented start-up,
# written for Debian's PostgreSQL 15. See the Dockerfile for what it honours.
set -Eeo pipefail

# VAR or VAR_FILE (Docker secrets), never both.
file_env() {
    local var=$1 file_var="${1}_FILE" default=${2:-} value
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        echo >&2 "error: both $var and $file_var are set (but are exclusive)"
        exit 1
    fi
    value=$default
    if [ -n "${!var:-}" ]; then
        value=${!var}
    elif [ -n "${!file_var:-}" ]; then
        value=$(< "${!file_var}")
    fi
    export "$var=$value"
    unset "$file_var"
}

setup_env() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
    DATABASE_ALREADY_EXISTS=
    if [ -s "$PGDATA/PG_VERSION" ]; then
        DATABASE_ALREADY_EXISTS=true
    fi
}

create_directories() {
    mkdir -p "$PGDATA"
    chmod 00700 "$PGDATA" || :
    mkdir -p /var/run/postgresql || :
    chmod 03775 /var/run/postgresql || :
    if [ "$(id -u)" = 0 ]; then
        find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
        find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
    fi
}

require_password() {
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        cat >&2 <<'EOE'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
EOE
        exit 1
    fi
}

# psql over the local socket as the superuser (trust on the socket).
run_sql() {
    local args=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ -n "$POSTGRES_DB" ]; then
        args+=(--dbname "$POSTGRES_DB")
    fi
    PGHOST= PGHOSTADDR= "${args[@]}" "$@"
}

init_database_dir() {
    # --pwfile refuses an empty file, hence the newline.
    eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"
}

# TCP clients authenticate with the server's password_encryption (scram-sha-256
# in 15), unless POSTGRES_HOST_AUTH_METHOD says otherwise.
setup_hba() {
    [ "$1" = postgres ] && shift
    local auth
    auth=$(postgres -C password_encryption "$@")
    : "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
}

temp_server_start() {
    [ "$1" = postgres ] && shift
    # Socket only: nothing can connect over TCP before the init scripts ran.
    set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
    PGUSER=${PGUSER:-$POSTGRES_USER} pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
    PGUSER=${PGUSER:-postgres} pg_ctl -D "$PGDATA" -m fast -w stop
}

create_database() {
    local exists
    exists=$(POSTGRES_DB= run_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only \
        <<< "SELECT 1 FROM pg_database WHERE datname = :'db';")
    if [ -z "$exists" ]; then
        POSTGRES_DB= run_sql --dbname postgres --set db="$POSTGRES_DB" <<< 'CREATE DATABASE :"db";'
    fi
}

process_init_files() {
    local f
    for f; do
        case "$f" in
            *.sh) if [ -x "$f" ]; then echo "$0: running $f"; "$f"; else echo "$0: sourcing $f"; . "$f"; fi ;;
            *.sql) echo "$0: running $f"; run_sql -f "$f" ;;
            *.sql.gz) echo "$0: running $f"; gunzip -c "$f" | run_sql ;;
            *.sql.xz) echo "$0: running $f"; xzcat "$f" | run_sql ;;
            *.sql.zst) echo "$0: running $f"; zstd -dc "$f" | run_sql ;;
            *) echo "$0: ignoring $f" ;;
        esac
    done
}

wants_help() {
    local arg
    for arg; do
        case "$arg" in -'?' | --help | --describe-config | -V | --version) return 0 ;; esac
    done
    return 1
}

main() {
    if [ "${1:0:1}" = - ]; then
        set -- postgres "$@"
    fi
    if [ "$1" = postgres ] && ! wants_help "$@"; then
        setup_env
        create_directories
        if [ "$(id -u)" = 0 ]; then
            exec gosu postgres "$BASH_SOURCE" "$@"
        fi
        if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
            require_password
            ls /docker-entrypoint-initdb.d/ > /dev/null
            init_database_dir
            setup_hba "$@"
            export PGPASSWORD=${PGPASSWORD:-$POSTGRES_PASSWORD}
            temp_server_start "$@"
            create_database
            shopt -s nullglob
            process_init_files /docker-entrypoint-initdb.d/*
            shopt -u nullglob
            temp_server_stop
            unset PGPASSWORD
            echo
            echo 'PostgreSQL init process complete; ready for start up.'
            echo
        else
            echo
            echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
            echo
        fi
    fi
    exec "$@"
}

main "$@"
