# Create or update the database's login roles and their grants; set each role's
# password. Runs inside the postgres container as the superuser, over its local
# socket; idempotent (every statement may run again on a set-up database).
#
# Environment: POSTGRES_USER (superuser), POSTGRES_DB (the app's database) and
# the role names OWNER_ROLE (migrations: owns the app schema `public` and its
# objects), APP_ROLE (app and worker: DML on the owner's tables, by default
# privileges), MONITOR_ROLE (exporter: pg_monitor), BACKUP_ROLE (pgBackRest:
# settings, backup functions, checkpoint). Stdin: four lines, the passwords of
# the owner, app, monitor and backup roles in that order, letters and digits.
# Exit 1 on a malformed password, psql's status on an SQL error.
set -eu
read_password() {
    IFS= read -r password || password=""
    case "${password}" in
        "" | *[!A-Za-z0-9]*) echo "postgres-roles: expected four passwords of letters and digits on stdin" >&2; exit 1 ;;
    esac
}
read_password; owner_password=${password}
read_password; app_password=${password}
read_password; monitor_password=${password}
read_password; backup_password=${password}
for name in "${OWNER_ROLE}" "${APP_ROLE}" "${MONITOR_ROLE}" "${BACKUP_ROLE}"; do
    case "${name}" in
        "" | *[!a-z0-9_]*) echo "postgres-roles: role name '${name}' is not lower case letters, digits, _" >&2; exit 1 ;;
    esac
done

# One role's statements: created if missing, then every attribute set (a role
# changed by hand is put back), and its password. printf is a shell builtin:
# the passwords are on no process's command line.
login_role() {
    printf "SELECT 'CREATE ROLE %s' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') \\\\gexec\n" "$1" "$1"
    printf "ALTER ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS" "$1"
    printf " CONNECTION LIMIT %s PASSWORD '%s';\n" "$2" "$3"
}

{
    echo "BEGIN;"
    login_role "${OWNER_ROLE}" 10 "${owner_password}"
    login_role "${APP_ROLE}" -1 "${app_password}"
    login_role "${MONITOR_ROLE}" 5 "${monitor_password}"
    login_role "${BACKUP_ROLE}" 5 "${backup_password}"
    cat <<SQL
-- Only these roles (and the superuser) connect to the app's database.
REVOKE ALL ON DATABASE ${POSTGRES_DB} FROM PUBLIC;
GRANT CONNECT ON DATABASE ${POSTGRES_DB} TO ${OWNER_ROLE}, ${APP_ROLE}, ${MONITOR_ROLE};
GRANT TEMPORARY ON DATABASE ${POSTGRES_DB} TO ${OWNER_ROLE};

-- The owner owns the app schema and every object in it that an extension does
-- not (tables made by migrations run as the superuser before these roles).
ALTER SCHEMA public OWNER TO ${OWNER_ROLE};
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SELECT format('ALTER %s public.%I OWNER TO ${OWNER_ROLE}',
              CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, c.relname)
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
   AND c.relowner <> '${OWNER_ROLE}'::regrole
   AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
            AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype = 'e') \\gexec
SELECT format('ALTER FUNCTION %s OWNER TO ${OWNER_ROLE}', p.oid::regprocedure)
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> '${OWNER_ROLE}'::regrole AND p.prokind = 'f'
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                   AND d.deptype = 'e') \\gexec

-- The app role: data, not definitions. Default privileges cover the tables a
-- migration (run as the owner) creates later; the grants, those already there.
GRANT USAGE ON SCHEMA public TO ${APP_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${APP_ROLE};
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${APP_ROLE};
ALTER DEFAULT PRIVILEGES FOR ROLE ${OWNER_ROLE} IN SCHEMA public
      GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${APP_ROLE};
ALTER DEFAULT PRIVILEGES FOR ROLE ${OWNER_ROLE} IN SCHEMA public
      GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ${APP_ROLE};

-- The exporter: the statistics views and settings, no table data.
GRANT pg_monitor TO ${MONITOR_ROLE};

COMMIT;
SQL
} | psql -v ON_ERROR_STOP=1 -q -X -U "${POSTGRES_USER}" -d "${POSTGRES_DB}"
# pgBackRest and the backup job connect to the `postgres` database, and
# function privileges are per database: the backup role's grants are made there.
# pgBackRest's backup as a non-superuser: read the settings it checks
# (data_directory, archive_command...), start and stop the backup, a fast
# checkpoint; the job's archive check (switch WAL, list archive_status) and its
# restore points.
psql -v ON_ERROR_STOP=1 -q -X -U "${POSTGRES_USER}" -d postgres <<SQL
BEGIN;
GRANT pg_read_all_settings, pg_checkpoint TO ${BACKUP_ROLE};
GRANT EXECUTE ON FUNCTION pg_catalog.pg_backup_start(text, boolean), pg_catalog.pg_backup_stop(boolean),
      pg_catalog.pg_switch_wal(), pg_catalog.pg_ls_archive_statusdir(),
      pg_catalog.pg_create_restore_point(text) TO ${BACKUP_ROLE};
COMMIT;
SQL
echo "postgres-roles: roles ${OWNER_ROLE} ${APP_ROLE} ${MONITOR_ROLE} ${BACKUP_ROLE} set"
