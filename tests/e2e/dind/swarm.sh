#!/usr/bin/env bash
# swarm.sh (was probe.sh) - build a Docker-in-Docker node image from host binaries and form a
# 3-node Docker Swarm (dind-m1 manager, dind-a1/dind-a2 workers) on the host
# daemon WITHOUT putting the host daemon into swarm mode. Works offline.
#
#   probe.sh build   build image dind-node:probe (idempotent; rebuilt each call)
#   probe.sh up      build (if image missing) + start 3 nodes + form swarm +
#                    label a1/a2 role.app=true + load images into inner daemons
#   probe.sh status  show nodes / services
#   probe.sh drill   deploy test service and run the node-loss drill (prints timings)
#                    DRILL_MODE=pause|stop|kill|partition (default pause)
#   probe.sh load NODE IMAGE...   copy host images into one node's daemon
#                    (one `docker save` per call; skips images already there)
#   probe.sh down    remove every dind-* container/network/volume made here
#                    (keeps the image; `probe.sh down --image` removes it too)
#
# Each inner dockerd also listens on a socket the host can reach,
# $SOCK_DIR/<node>/docker.sock (default /run/dind-sock/dind-m1/docker.sock):
# DOCKER_HOST=unix://$SOCK_DIR/dind-m1/docker.sock docker node ls
#
# Env knobs: BASE_IMAGE (default shia-e2e/debian-base:bookworm),
#   IMAGE (dind-node:probe), STORAGE_DRIVER (overlay2|vfs, default overlay2),
#   INNER_IPTABLES (true|false, default true),
#   LOAD_IMAGES (space separated host images to copy into every inner daemon,
#   default "alpine:3.20.3 nginx:1.27.2-alpine").
# All names start with dind- . Fails loudly (set -euo pipefail, die()).
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-shia-e2e/debian-base:bookworm}
IMAGE=${IMAGE:-dind-node:probe}
NET=dind-net
NODES=(dind-m1 dind-a1 dind-a2)
STORAGE_DRIVER=${STORAGE_DRIVER:-overlay2}
INNER_IPTABLES=${INNER_IPTABLES:-true}
LOAD_IMAGES=${LOAD_IMAGES-"alpine:3.20.3 nginx:1.27.2-alpine"}
SOCK_DIR=${SOCK_DIR:-/run/dind-sock}
# `--privileged` FAILS on this host: the host dockerd's capability bounding set
# lacks CAP_SYS_RESOURCE (CapBnd 000001fffeffffff), so runc errors with
# "unable to apply caps: operation not permitted", and with --privileged
# Docker 20.10 ignores --cap-drop. Emulate privileged instead: all caps but
# SYS_RESOURCE, no seccomp/apparmor, unmasked /proc, all devices, private
# cgroupns (the entrypoint remounts /sys and the cgroup hierarchies rw).
# Set NODE_PRIVILEGED=1 on hosts where --privileged works.
if [ "${NODE_PRIVILEGED:-0}" = 1 ]; then
  NODE_SEC_ARGS=(--privileged)
else
  NODE_SEC_ARGS=(--cap-add ALL --cap-drop SYS_RESOURCE
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined
    --security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm'
    --cgroupns private)
fi

die() { echo "swarm.sh: ERROR: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
in_node() { local n=$1; shift; docker exec "$n" docker "$@"; }

# ---------------------------------------------------------------- build ----
usrmerge() { # base image is usr-merged: /lib,/bin,/sbin,/lib64 are symlinks; never COPY over them
  case $1 in /lib/*|/lib64/*|/bin/*|/sbin/*) echo "/usr$1" ;; *) echo "$1" ;; esac; }
stage_file() { # copy a host file (deref'd) + its shared libs into $CTX/rootfs
  local f=$1 dst lib
  [ -e "$f" ] || die "host file missing: $f"
  dst="$CTX/rootfs$(usrmerge "$f")"; mkdir -p "$(dirname "$dst")"; cp -L "$f" "$dst"
  if ldd "$f" >/dev/null 2>&1; then
    ldd "$f" | awk '/=> \//{print $3} /^\s*\/lib/{print $1}' | while read -r lib; do
      dst="$CTX/rootfs$(usrmerge "$lib")"
      [ -e "$dst" ] && continue
      mkdir -p "$(dirname "$dst")"; cp -L "$lib" "$dst"
    done
  fi
}

cmd_build() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || die "base image $BASE_IMAGE not present locally"
  CTX=$(mktemp -d /tmp/dind-build.XXXXXX); trap 'rm -rf "$CTX"' EXIT
  local b p
  for b in dockerd containerd containerd-shim containerd-shim-runc-v2 runc docker-init docker-proxy docker \
           ip ps xtables-nft-multi xtables-legacy-multi; do
    p=$(command -v "$b" 2>/dev/null) || { [ "$b" = containerd-shim ] && continue; die "host binary '$b' not found (apt install docker.io containerd runc iptables iproute2 procps)"; }
    stage_file "$p"
  done
  # iptables extensions (xtables modules) + their libs
  for p in /usr/lib/x86_64-linux-gnu/xtables/*.so; do stage_file "$p"; done
  # iptables front-end symlinks (nft backend, same as host)
  mkdir -p "$CTX/rootfs/usr/sbin"
  for l in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf xtables-nft-multi "$CTX/rootfs/usr/sbin/$l"
  done
  for l in iptables-legacy iptables-legacy-save iptables-legacy-restore ip6tables-legacy; do
    ln -sf xtables-legacy-multi "$CTX/rootfs/usr/sbin/$l"
  done
  cat > "$CTX/rootfs/usr/local/bin/dind-entrypoint" <<'EOF'
#!/bin/sh
# minimal dind entrypoint: shared mount propagation, clean stale pids, run dockerd
set -e
mount --make-rshared / 2>/dev/null || true
# When the node runs WITHOUT --privileged (see NODE_SEC_ARGS in probe.sh),
# /sys and the cgroup v1 hierarchies are mounted read-only: make them writable.
if ! touch /sys/.dind-rw 2>/dev/null; then mount -o remount,rw /sys 2>/dev/null || true; fi
for d in /sys/fs/cgroup/*; do
  mountpoint -q "$d" && mount -o remount,bind,rw "$d" 2>/dev/null || true
done
if [ -d /sys/kernel/security ] && ! mountpoint -q /sys/kernel/security; then
  mount -t securityfs none /sys/kernel/security 2>/dev/null || true
fi
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
mkdir -p /var/log
exec dockerd --host=unix:///var/run/docker.sock "$@"
EOF
  chmod +x "$CTX/rootfs/usr/local/bin/dind-entrypoint"
  cat > "$CTX/Dockerfile" <<EOF
FROM $BASE_IMAGE
COPY rootfs/ /
RUN ldconfig && dockerd --version && containerd --version && runc --version && iptables --version && docker --version
VOLUME /var/lib/docker
ENTRYPOINT ["/usr/local/bin/dind-entrypoint"]
EOF
  local t0; t0=$(now)
  docker build -q -t "$IMAGE" "$CTX" >/dev/null || die "docker build of $IMAGE failed"
  log "built $IMAGE in $(since "$t0")s"
}

# ------------------------------------------------------------------- up ----
wait_inner_daemon() { local n=$1 i
  for i in $(seq 1 120); do docker exec "$n" docker info >/dev/null 2>&1 && return 0; sleep 0.5; done
  docker logs --tail 40 "$n" >&2 || true
  die "inner dockerd on $n did not come up within 60s"
}

cmd_up() {
  local T0 t; T0=$(now)
  docker info --format '{{.Swarm.LocalNodeState}}' >/dev/null || die "host docker daemon not reachable"
  if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then cmd_build; fi
  docker network inspect "$NET" >/dev/null 2>&1 || docker network create "$NET" >/dev/null
  local n args=(--storage-driver="$STORAGE_DRIVER" --host=unix:///dind-sock/docker.sock)
  [ "$INNER_IPTABLES" = false ] && args+=(--iptables=false)
  t=$(now)
  for n in "${NODES[@]}"; do
    if [ "$(docker inspect -f '{{.State.Running}}' "$n" 2>/dev/null)" != true ]; then
      docker rm -f "$n" >/dev/null 2>&1 || true
      mkdir -p "$SOCK_DIR/$n"
      docker run -d "${NODE_SEC_ARGS[@]}" --name "$n" --hostname "$n" --network "$NET" \
        -v "$n-data:/var/lib/docker" -v "$SOCK_DIR/$n:/dind-sock" "$IMAGE" "${args[@]}" >/dev/null
    fi
  done
  for n in "${NODES[@]}"; do wait_inner_daemon "$n"; done
  log "3 inner daemons up in $(since "$t")s"

  # load images (parallel across nodes) unless already present
  t=$(now)
  local img pids=()
  for img in $LOAD_IMAGES; do
    docker image inspect "$img" >/dev/null 2>&1 || die "image $img not present on host"
    for n in "${NODES[@]}"; do
      if ! docker exec "$n" docker image inspect "$img" >/dev/null 2>&1; then
        ( docker save "$img" | docker exec -i "$n" docker load -q >/dev/null ) & pids+=($!)
      fi
    done
  done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && { wait "$p" || die "image load failed"; }; done
  log "images loaded in $(since "$t")s"

  t=$(now)
  local mip; mip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" dind-m1)
  [ -n "$mip" ] || die "no IP for dind-m1 on $NET"
  if [ "$(in_node dind-m1 info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    in_node dind-m1 swarm init --advertise-addr "$mip" --listen-addr "$mip:2377" >/dev/null
  fi
  local tok; tok=$(in_node dind-m1 swarm join-token -q worker)
  for n in dind-a1 dind-a2; do
    if [ "$(in_node "$n" info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
      in_node "$n" swarm join --token "$tok" "$mip:2377" >/dev/null || die "$n failed to join swarm"
    fi
  done
  for n in dind-a1 dind-a2; do in_node dind-m1 node update --label-add role.app=true "$n" >/dev/null; done
  local ready; ready=$(in_node dind-m1 node ls --format '{{.Status}}' | grep -c Ready || true)
  [ "$ready" = 3 ] || { in_node dind-m1 node ls >&2; die "expected 3 Ready nodes, got $ready"; }
  log "swarm formed (init+join+labels) in $(since "$t")s; total up $(since "$T0")s"
  in_node dind-m1 node ls
}

# Copy host images into one node's inner daemon: one `docker save` of the ones it lacks.
cmd_load() {
  local n=${1:-}; shift || true
  [ -n "$n" ] && [ $# -gt 0 ] || die "usage: load NODE IMAGE..."
  local img want=() t; t=$(now)
  for img in "$@"; do
    docker image inspect "$img" >/dev/null 2>&1 || die "image $img not present on host"
    docker exec "$n" docker image inspect "$img" >/dev/null 2>&1 || want+=("$img")
  done
  [ ${#want[@]} -gt 0 ] || { log "$n: images already there"; return 0; }
  docker save "${want[@]}" | docker exec -i "$n" docker load -q >/dev/null || die "image load into $n failed"
  log "$n: loaded ${want[*]} in $(since "$t")s"
}

cmd_status() {
  in_node dind-m1 node ls
  in_node dind-m1 service ls
  docker stats --no-stream "${NODES[@]}"
}

# ---------------------------------------------------------------- drill ----
# Deploy web (nginx, 2 replicas, dnsrr, constraint+spread) on overlay dind-ov,
# run a client loop against tasks.web, pause a2's dockerd, time detection and
# rescheduling, count failed requests.
cmd_drill() {
  local SVC=web OV=dind-ov i
  for i in $(seq 1 120); do
    [ "$(in_node dind-m1 node ls --format '{{.Status}}' | grep -c Ready)" = 3 ] && break; sleep 0.5
  done
  [ "$i" -lt 120 ] || die "not all 3 nodes Ready before drill"
  in_node dind-m1 network inspect "$OV" >/dev/null 2>&1 || \
    in_node dind-m1 network create -d overlay --attachable "$OV" >/dev/null
  in_node dind-m1 service rm "$SVC" client >/dev/null 2>&1 || true; sleep 2
  in_node dind-m1 service create -d --name "$SVC" --replicas 2 --endpoint-mode dnsrr \
    --network "$OV" --constraint 'node.labels.role.app==true' \
    --placement-pref 'spread=node.labels.role.app' nginx:1.27.2-alpine >/dev/null
  wait_running "$SVC" 2 90 || die "service $SVC never got 2 running tasks"
  in_node dind-m1 service ps "$SVC" --filter desired-state=running --format '{{.Name}} {{.Node}} {{.CurrentState}}'
  # client on manager (attachable overlay); resolves tasks.web, 1 request / 0.2s
  docker exec dind-m1 docker rm -f dind-client >/dev/null 2>&1 || true
  # NB: busybox wget in the local alpine:3.20.3 stand-in segfaults (rc 139), so use python3.
  # Each iteration (every 0.2s): fresh DNS lookup of tasks.web, then one GET (1s timeout)
  # to EVERY address returned ("per-address"), logged as "<epoch> ok|FAIL <ip>"; "FAIL nodns" if none.
  docker exec dind-m1 docker run -d --name dind-client --network "$OV" alpine:3.20.3 python3 -u -c '
import socket, time, urllib.request
while True:
    try: ips = sorted({a[4][0] for a in socket.getaddrinfo("tasks.web", 80, socket.AF_INET, socket.SOCK_STREAM)})
    except Exception: ips = []
    if not ips: print("%.3f FAIL nodns" % time.time())
    for ip in ips:
        try: urllib.request.urlopen("http://%s/" % ip, timeout=1).read(); print("%.3f ok %s" % (time.time(), ip))
        except Exception as e: print("%.3f FAIL %s %s" % (time.time(), ip, type(e).__name__))
    time.sleep(0.2)
' >/dev/null
  sleep 5
  log "resolution of tasks.$SVC from client: $(docker exec dind-m1 docker exec dind-client getent ahostsv4 tasks.$SVC | awk '{print $1}' | sort -u | tr '\n' ' ')"
  local mode=${DRILL_MODE:-pause} t0 tdown trun
  log "failure drill: $mode dind-a2"
  t0=$(now)
  case $mode in
    pause) docker pause dind-a2 >/dev/null ;;
    stop)  docker stop -t 0 dind-a2 >/dev/null ;;
    kill)  docker kill dind-a2 >/dev/null ;;
    # NB: killing dockerd from inside the node does nothing: it is PID 1 there.
    partition) local mip; mip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" dind-m1)
      docker exec dind-a2 iptables -I INPUT -s "$mip" -j DROP
      docker exec dind-a2 iptables -I OUTPUT -d "$mip" -j DROP ;;
    *) die "DRILL_MODE must be pause|stop|kill|partition" ;;
  esac
  while [ "$(in_node dind-m1 node inspect dind-a2 --format '{{.Status.State}}')" != down ]; do
    sleep 0.5; [ "$(since "$t0" | cut -d. -f1)" -lt 180 ] || die "a2 never went Down"; done
  tdown=$(since "$t0"); log "a2 Down after ${tdown}s"
  wait_running_on "$SVC" dind-a1 2 240 || die "service never back to 2 tasks on a1"
  trun=$(since "$t0"); log "2 running tasks on a1 after ${trun}s"
  sleep 3
  docker exec dind-m1 docker logs dind-client > /tmp/dind-client.log 2>&1 || true
  local ok fail; ok=$(grep -c ' ok ' /tmp/dind-client.log || true); fail=$(grep -c FAIL /tmp/dind-client.log || true)
  local t0s; t0s=$(printf %.3f "$t0")
  local fwin; fwin=$(awk -v t0="$t0s" '$2=="FAIL"{ if(!f) f=$1; l=$1 } END{ if(f) printf "first_fail=+%.1fs last_fail=+%.1fs", f-t0, l-t0; else print "no_failures" }' /tmp/dind-client.log)
  local pre; pre=$(awk -v t0="$t0s" '$1<t0 && $2=="FAIL"' /tmp/dind-client.log | wc -l)
  echo "RESULT mode=$mode node_down_s=$tdown resched_s=$trun requests_ok=$ok requests_failed=$fail (failed_before_drill=$pre) $fwin"
  grep FAIL /tmp/dind-client.log | awk '{print $3, $4}' | sort | uniq -c
  in_node dind-m1 service ps "$SVC" --format '{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}}'
  case $mode in pause) docker unpause dind-a2 >/dev/null ;; stop) docker start dind-a2 >/dev/null; wait_inner_daemon dind-a2 ;;
    kill) docker start dind-a2 >/dev/null; wait_inner_daemon dind-a2 ;;
    partition) docker exec dind-a2 sh -c 'iptables -D INPUT 1; iptables -D OUTPUT 1' ;; esac
}
wait_running() { local svc=$1 want=$2 max=$3 i c
  for i in $(seq 1 $((max*2))); do
    c=$(in_node dind-m1 service ps "$svc" --filter desired-state=running --format '{{.CurrentState}}' | grep -c '^Running' || true)
    [ "$c" -ge "$want" ] && return 0; sleep 0.5; done; return 1; }
wait_running_on() { local svc=$1 node=$2 want=$3 max=$4 i c
  for i in $(seq 1 $((max*2))); do
    c=$(in_node dind-m1 service ps "$svc" --filter desired-state=running --filter node="$node" --format '{{.CurrentState}}' | grep -c '^Running' || true)
    [ "$c" -ge "$want" ] && return 0; sleep 0.5; done; return 1; }

# ----------------------------------------------------------------- down ----
cmd_down() {
  local n
  for n in "${NODES[@]}"; do
    docker unpause "$n" >/dev/null 2>&1 || true
    docker rm -f -v "$n" >/dev/null 2>&1 || true
    docker volume rm "$n-data" >/dev/null 2>&1 || true
  done
  docker network rm "$NET" >/dev/null 2>&1 || true
  for n in "${NODES[@]}"; do rm -rf "${SOCK_DIR:?}/$n"; done
  rmdir "$SOCK_DIR" 2>/dev/null || true
  [ "${1:-}" = --image ] && { docker image rm "$IMAGE" >/dev/null 2>&1 || true; }
  # verify nothing left
  local left; left=$(docker ps -a --filter name='^dind-' -q; docker network ls --filter name='^dind-' -q; docker volume ls --filter name='^dind-' -q)
  [ -z "$left" ] || die "leftover dind-* objects: $left"
  log "down: all dind-* containers/networks/volumes removed"
}

case "${1:-}" in
  build) cmd_build ;;
  up) cmd_up ;;
  status) cmd_status ;;
  drill) cmd_drill ;;
  load) shift; cmd_load "$@" ;;
  down) shift; cmd_down "${1:-}" ;;
  *) echo "usage: $0 build|up|status|drill|load NODE IMAGE...|down [--image]" >&2; exit 2 ;;
esac
