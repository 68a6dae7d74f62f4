# Pass once Docker reports the container NAME healthy; fail after TIMEOUT
# seconds, printing its last health probes. NAME and TIMEOUT are set above this
# text (components/host/containers.py). Runs on the Docker host.
set -eu
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
