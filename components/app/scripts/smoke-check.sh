# Smoke-check every replica of a slot from inside the Docker network, on the
# path nginx uses (the frontend network), with a throwaway probe container of
# nginx's image (busybox wget), with no capability, a read-only root and a
# pids limit (RIGHTS). Parameters (NETWORK, PROBE_IMAGE, RIGHTS, TARGETS,
# ATTEMPTS, PAUSE) are set above this text by components/release.py. Exits
# non-zero if any replica is not healthy; the switch depends on this step.
# On a swarm (SWARM_SERVICE, REPLICAS, PORT set) the targets are the addresses
# of the service's running tasks on NETWORK, as the manager knows them, and
# there must be REPLICAS of them.
set -eu
if [ -n "${SWARM_SERVICE:-}" ]; then
    attached="{{range .NetworksAttachments}}{{if eq .Network.Spec.Name \"${NETWORK}\"}}{{range .Addresses}}{{.}} {{end}}{{end}}{{end}}"
    TARGETS=$(for task in $(docker service ps -q --filter desired-state=running "${SWARM_SERVICE}"); do
        docker inspect --format "${attached}" "${task}"
    done | tr ' ' '\n' | sed -n "s,/.*,:${PORT},p")
    found=$(printf '%s\n' ${TARGETS} | grep -c . || true)
    if [ "${found}" -ne "${REPLICAS}" ]; then
        echo "smoke: ${SWARM_SERVICE} has ${found} running tasks on ${NETWORK}, not ${REPLICAS}" >&2
        exit 1
    fi
fi
for target in ${TARGETS}; do
    attempt=1
    while :; do
        body=$(docker run --rm --network "${NETWORK}" --memory 64m --security-opt no-new-privileges:true ${RIGHTS} \
            --entrypoint wget "${PROBE_IMAGE}" -q -T 5 -O - "http://${target}/health?check_services=true" \
            2>/dev/null) || body=""
        if printf '%s' "${body}" | grep -Eq '"status" *: *"healthy"'; then
            echo "smoke: ${target} healthy"
            break
        fi
        if [ "${attempt}" -ge "${ATTEMPTS}" ]; then
            echo "smoke: ${target} not healthy after ${ATTEMPTS} attempts: ${body:-no answer}" >&2
            exit 1
        fi
        attempt=$((attempt + 1))
        sleep "${PAUSE}"
    done
done
