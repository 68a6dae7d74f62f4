# Set the app role's password to the one read from stdin. Runs inside the
# postgres container, over its local socket. Needed because the image applies
# POSTGRES_PASSWORD only when the data directory is first initialised: without
# this step a rotated password would reach the app but not the database.
set -eu
IFS= read -r password
case "${password}" in
    "" | *[!A-Za-z0-9]*) echo "postgres-set-password: expected letters and digits on stdin" >&2; exit 1 ;;
esac
# printf is a shell builtin: the password is on no process's command line.
printf 'ALTER ROLE "%s" PASSWORD '\''%s'\'';\n' "${POSTGRES_USER}" "${password}" |
    psql -v ON_ERROR_STOP=1 -q -U "${POSTGRES_USER}" -d "${POSTGRES_DB}"
echo "postgres-set-password: password of role ${POSTGRES_USER} set"
