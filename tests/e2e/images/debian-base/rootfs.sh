#!/bin/sh
# Writes a Debian bookworm root filesystem as a tar to stdout; build.py pipes it
# into `docker import`. This is the one base every stand-in image builds FROM:
# no registry is reachable here, so nothing can be pulled.
#
# minbase: essential packages + apt, no init, no recommends. The dpkg and apt
# options are written into the image, so every later `apt-get install` in a
# Dockerfile also skips recommends and documentation (smaller, faster builds).
# apt lists are removed by mmdebstrap's cleanup: Dockerfiles run `apt-get update`.
set -eu
exec mmdebstrap --variant=minbase --mode=root --format=tar --quiet \
    --aptopt='APT::Install-Recommends "false"' \
    --aptopt='APT::Install-Suggests "false"' \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    bookworm - ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"}
