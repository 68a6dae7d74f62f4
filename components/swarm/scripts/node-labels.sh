# Label each swarm node with its roles from the stack's `nodes`, and refuse a
# swarm that is not the one the stack describes. NODES (set above this text,
# components/swarm/nodes.py) has one line per node: "<hostname> <role>,<role>".
# Runs on a manager. Labels the stack does not name are left alone.
set -eu
ROLES="manager edge app data"
PREFIX=org.shia-chatbot
printf '%s\n' "$NODES" | while read -r name roles; do
    if ! facts=$(docker node inspect --format '{{.Status.State}} {{.Spec.Role}} {{.Spec.Availability}}' "$name" 2>&1); then
        echo "node $name is not in the swarm ($facts); join it first (docs/swarm.md)" >&2
        exit 1
    fi
    set -- $facts
    if [ "$1" != ready ]; then
        echo "node $name is $1, not ready" >&2
        exit 1
    fi
    case ",$roles," in *,manager,*) want=manager ;; *) want=worker ;; esac
    if [ "$2" != "$want" ]; then
        echo "node $name is a swarm $2 but the stack lists it as a $want: docker node promote/demote $name, or fix its roles" >&2
        exit 1
    fi
    args="--label-add $PREFIX.node=$name"
    for role in $ROLES; do
        has=$(docker node inspect --format "{{index .Spec.Labels \"$PREFIX.role.$role\"}}" "$name")
        case ",$roles," in
            *,"$role",*) args="$args --label-add $PREFIX.role.$role=true" ;;
            # --label-rm fails for a label the node does not have.
            *) [ -z "$has" ] || args="$args --label-rm $PREFIX.role.$role" ;;
        esac
    done
    docker node update $args "$name" > /dev/null
    echo "$name: $roles ($3)"
done
