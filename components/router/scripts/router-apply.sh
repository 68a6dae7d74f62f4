# Install the router's files (a base64 tar on stdin: default.conf, router.js),
# check them with `nginx -t`, reload gracefully, and return only once nginx
# serves the new config. Runs inside the nginx container (the program wraps it
# in `docker exec`); the real-nginx tests run this same file against a lab nginx.
#   ROUTER_DIR  where the files go (default /etc/nginx/conf.d)
#   NGINX       the nginx command, with any -p/-c/-e flags (default: nginx)
#   NGINX_GLOBALS  main-context directives the running nginx was started with
#               (`-g`: loading njs), so that `nginx -t` reads the files alike
#   STATUS_URL  the loopback status server the config itself defines
#   EXPECT      the config digest it must report once the reload is done
#   NGINX_PID_FILE  the running master's pid file (default /var/run/nginx.pid)
# Files `nginx -t` refuses are taken back out, and the running nginx is never
# told to reload: it keeps serving the old ones.
set -eu
dir="${ROUTER_DIR:-/etc/nginx/conf.d}"
nginx_cmd="${NGINX:-nginx}"
new="$dir/.next" old="$dir/.prev"
rm -rf "$new" "$old"
mkdir -p "$new" "$old"
base64 -d | tar -x -C "$new"
# Without IPv6 in this network namespace a `listen [::]` fails; drop those
# lines, as the official image's 10-listen-on-ipv6-by-default.sh decides.
if [ ! -f /proc/net/if_inet6 ]; then
    sed -i '/# ipv6$/d' "$new"/*.conf
fi
names=""
for file in "$new"/*; do
    name=$(basename "$file")
    names="$names $name"
    if [ -f "$dir/$name" ]; then cp "$dir/$name" "$old/$name"; fi
    mv "$file" "$dir/$name"
done
if ! $nginx_cmd ${NGINX_GLOBALS:+-g "$NGINX_GLOBALS"} -t -q; then
    for name in $names; do
        if [ -f "$old/$name" ]; then mv "$old/$name" "$dir/$name"; else rm -f "$dir/$name"; fi
    done
    echo "router: new config refused by nginx -t; the old one is still serving" >&2
    exit 1
fi
# This nginx's worker processes that accept now, by pid: a worker's title is
# "nginx: worker process" until it takes the master's shutdown signal, then
# "... is shutting down" (it closes its listening sockets at that moment and only
# finishes what it has). Without the master's pid file, nothing is checked.
master=$(cat "${NGINX_PID_FILE:-/var/run/nginx.pid}" 2>/dev/null || true)
accepting_workers() {
    [ -n "$master" ] || return 0
    for proc in /proc/[0-9]*; do
        # stat's 4th field is the parent's pid (the 2nd, "(nginx)", has no space).
        read -r _ _ _ parent _ 2>/dev/null < "$proc/stat" || continue
        [ "$parent" = "$master" ] || continue
        case "$(tr '\000' ' ' 2>/dev/null < "$proc/cmdline")" in
        *"is shutting down"*) ;;
        *"worker process"*) echo "${proc#/proc/}" ;;
        esac
    done
}
old_workers=$(accepting_workers)
# `nginx -s` parses the whole config before it signals (to find the pid file):
# it needs the same globals, or njs's directives are unknown to it.
$nginx_cmd ${NGINX_GLOBALS:+-g "$NGINX_GLOBALS"} -s reload
# `nginx -s reload` returns once the signal is sent, before the new workers
# serve: wait until the status server answers with the new digest, and until
# no worker of the old config still accepts (on a port both configs listen
# on, an old one can take a new connection for a few milliseconds more).
attempts=100
until wget -q -O - "$STATUS_URL" 2>/dev/null | grep -q "config=$EXPECT " &&
    ! accepting_workers | grep -qFx "$old_workers"; do
    attempts=$((attempts - 1))
    if [ "$attempts" -le 0 ]; then
        echo "router: nginx reloaded but does not serve config $EXPECT alone after 10 s" >&2
        exit 1
    fi
    sleep 0.1
done
rm -rf "$new" "$old"
echo "router: config $EXPECT applied and served"
