#!/bin/bash
# As the official ./entrypoint.sh: start the server; extra arguments go to it.
set -e
exec python3 -u /qdrant/qdrant_standin.py "$@"
