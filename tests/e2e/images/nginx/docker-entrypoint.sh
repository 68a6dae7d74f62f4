#!/bin/sh
# The nginx stand-in's entrypoint: as the official one, run the executable
# /docker-entrypoint.d/*.sh (and source *.envsh) before starting nginx; any
# other command runs as given.
set -e
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
    for f in $(find /docker-entrypoint.d/ -follow -type f | sort -V); do
        case "$f" in
            *.envsh) [ -x "$f" ] && . "$f" ;;
            *.sh) [ -x "$f" ] && "$f" ;;
        esac
    done
fi
exec "$@"
