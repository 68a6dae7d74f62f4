# Cap the container NAME's processes at PIDS_LIMIT (the Docker provider has
# no such input), then pass once Docker reports it healthy; fail after TIMEOUT
# seconds, printing its last health probes. NAME, PIDS_LIMIT and TIMEOUT are
# set above this text (components/host/containers.py). Runs on the Docker host.
set -eu
docker update --pids-limit "$PIDS_LIMIT" "$NAME" >/dev/null
waited=0
while :; do
    status=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}no healthcheck{{end}}' "$NAME")
    if [ "$status" = healthy ]; then
        echo "$NAME: healthy"
        exit 0
    fi
    if [ "$waited" -ge "$TIMEOUT" ]; then
        echo "$NAME: $status after ${TIMEOUT}s; last probes:" >&2
        docker inspect --format '{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}' "$NAME" >&2 || true
        exit 1
    fi
    sleep 1
    waited=$((waited + 1))
done
