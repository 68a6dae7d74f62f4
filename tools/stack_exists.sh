#!/bin/sh
# Does STACK exist in the state backend? For the workflows, before they open it.
#
#   tools/stack_exists.sh STACK error|warning
#
# Exit 0: it exists (nothing printed). Exit 3: it does not; a GitHub annotation
# at the given level says how to create it. CI never creates a stack: its first
# deploy needs the placeholders replaced and the encryptionsalt committed
# (docs/setup.md). Exit 1: the backend could not be read (the CLI's message on
# stderr), which is never mistaken for a missing stack.
set -u
stack=$1 level=$2
if out=$(pulumi stack select "$stack" 2>&1); then
    exit 0
fi
case $out in
*"no stack named"*)
    echo "::$level::stack $stack does not exist in ${PULUMI_BACKEND_URL:-the backend}. Create it once, from a checkout of main with the $stack environment's PULUMI_CONFIG_PASSPHRASE and credentials: pulumi stack init $stack --secrets-provider passphrase ; then commit the encryptionsalt line it writes into Pulumi.$stack.yaml (docs/setup.md)"
    exit 3 ;;
*)
    printf '%s\n' "$out" >&2
    exit 1 ;;
esac
