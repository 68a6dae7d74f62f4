#!/bin/sh
# The redis stand-in's entrypoint: the official image's start-up (see the Dockerfile).
set -e

# `-flag …` or `something.conf …` means redis-server with those arguments.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

# As root, given redis-server: own the data and restart as the redis user.
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec gosu redis "$0" "$@"
fi

# Files Redis writes are private unless a umask was chosen already.
if [ "$(umask)" = 0022 ]; then
    umask 0077
fi

exec "$@"
