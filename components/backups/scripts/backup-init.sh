# Prepare the backup repositories once the backup container BACKUP and the
# database container POSTGRES run (set above this text by
# components/backups/backups.py). Runs on the Docker host.
# Both ends of pgBackRest's repository must run one version: archive-push in
# POSTGRES, backup and restore in BACKUP.
set -eu
server=$(docker exec "$POSTGRES" pgbackrest version)
job=$(docker exec "$BACKUP" pgbackrest version)
if [ "$server" != "$job" ]; then
    echo "pgBackRest differs: $POSTGRES has '$server', $BACKUP has '$job'; build both from one distribution release (images.postgres, images.backupBase)" >&2
    exit 1
fi
docker exec "$BACKUP" /opt/shia-backup/bin/backup-init
