# The job's credentials as files: sourced by common.sh, so by every script
# whether crond or `docker exec` started it (an exec skips the image's CMD), and
# by the scheduler to check them at start. Sourced, never run. POSIX sh.
#
# On one host the stack passes each credential in the environment. On a swarm
# it passes <NAME>_FILE instead, the path of a Swarm secret under /run/secrets
# (components/backups/backups.py FILE_SECRETS, which must name exactly these):
# an environment entry would show in `docker service inspect` and hide the
# service's whole task spec from `pulumi preview`.
#
# resolve_secret_files: for each NAME below whose NAME_FILE is set, NAME becomes
# the file's content with one trailing newline removed, exported, and NAME_FILE
# is unset (a script this one starts sources common.sh again and finds NAME
# alone; pgBackRest would warn about an unknown PGBACKREST_*_FILE). NAME and
# NAME_FILE both set, or a file that cannot be read, is an error on stderr
# naming the variable and status 1, as docs/app-image.md asks of the app. With
# only NAME set, or neither, nothing changes.
SECRET_VARIABLES="RESTIC_PASSWORD AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY PGBACKREST_REPO2_S3_KEY
PGBACKREST_REPO2_S3_KEY_SECRET REDISCLI_AUTH QDRANT_API_KEY MC_HOST_minio"

resolve_secret_files() {
    _secret_newline='
'
    for _secret_name in $SECRET_VARIABLES; do
        eval "_secret_file=\${${_secret_name}_FILE:-}"
        [ -n "$_secret_file" ] || continue
        eval "_secret_value=\${${_secret_name}:-}"
        if [ -n "$_secret_value" ]; then
            printf 'error: both %s and %s_FILE are set (but are exclusive)\n' "$_secret_name" "$_secret_name" >&2
            return 1
        fi
        # The "." keeps the file's own trailing newlines, which $(...) would all drop.
        if ! _secret_value=$(cat -- "$_secret_file" && echo .); then
            printf 'error: %s_FILE=%s cannot be read\n' "$_secret_name" "$_secret_file" >&2
            return 1
        fi
        _secret_value=${_secret_value%.}
        _secret_value=${_secret_value%"$_secret_newline"}
        export "$_secret_name=$_secret_value"
        unset "${_secret_name}_FILE"
    done
    unset _secret_name _secret_file _secret_value _secret_newline
}
