# Run the database migrations once, with the slot's new image, on the backend
# network, before any container of that image serves, with the app's rights
# (RIGHTS: capabilities, read-only root, tmpfs, pids limit; hardening.py). Parameters are set above
# this text by components/release.py; the app's environment (secrets included)
# arrives on stdin as an env-file, so no secret is ever on a command line.
set -eu
echo "migrate: ${IMAGE} (alembic upgrade head)"
docker rm -f "${NAME}" >/dev/null 2>&1 || true
docker run --rm --name "${NAME}" --network "${NETWORK}" --env-file /dev/stdin \
    --memory "${MEMORY_MB}m" --security-opt no-new-privileges:true ${RIGHTS} \
    "${IMAGE}" alembic upgrade head
echo "migrate: done"
