# Install a new router config read from stdin, check it, and reload gracefully.
# Runs inside the nginx container (the program wraps it in `docker exec`); the
# live-nginx tests run this same file against a local nginx.
#   ROUTER_CONF  the config file nginx includes (default below)
#   NGINX        the nginx command, with any -p/-c flags (default: nginx)
# A config that `nginx -t` refuses is taken back out, and the running nginx is
# never told to reload: it keeps serving the old one.
set -eu
conf="${ROUTER_CONF:-/etc/nginx/conf.d/default.conf}"
nginx_cmd="${NGINX:-nginx}"
cat > "$conf.next"
if [ -f "$conf" ]; then cp "$conf" "$conf.prev"; fi
mv "$conf.next" "$conf"
if ! $nginx_cmd -t -q; then
    if [ -f "$conf.prev" ]; then mv "$conf.prev" "$conf"; else rm -f "$conf"; fi
    echo "router: new config refused by nginx -t; the old one is still serving" >&2
    exit 1
fi
$nginx_cmd -s reload
echo "router: config applied and nginx reloaded"
