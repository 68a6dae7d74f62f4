#!/bin/sh
# As MinIO's entrypoint: anything that is not `minio` gets `minio` put before it,
# and MINIO_USERNAME/MINIO_GROUPNAME, when both set, choose who runs it.
if [ "${1}" != "minio" ]; then
    if [ -n "${1}" ]; then
        set -- minio "$@"
    fi
fi
if [ -n "${MINIO_USERNAME}" ] && [ -n "${MINIO_GROUPNAME}" ]; then
    groupadd -f "${MINIO_GROUPNAME}" 2>/dev/null
    id -u "${MINIO_USERNAME}" >/dev/null 2>&1 || useradd -g "${MINIO_GROUPNAME}" "${MINIO_USERNAME}"
    exec setpriv --reuid="${MINIO_USERNAME}" --regid="${MINIO_GROUPNAME}" --init-groups "$@"
fi
exec "$@"
