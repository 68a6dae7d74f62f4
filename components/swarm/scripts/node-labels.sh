# Label each swarm node with its roles from the stack's `nodes`, and refuse a
# swarm that is not the one the stack describes. NODES (set above this text,
# components/swarm/nodes.py) has one line per node: "<hostname> <role>,<role>".
# Runs on a manager. A node the stack no longer lists loses its role labels;
# other labels are left alone. The data role never leaves a node that is
# ready: the data services would start elsewhere on empty volumes.
set -eu
ROLES="manager edge app data"
PREFIX=org.shia-chatbot
listed() { printf '%s\n' "$NODES" | awk -v n="$1" '$1 == n {print $2}'; }
for node in $(docker node ls --format '{{.Hostname}}'); do
    state=$(docker node inspect --format "{{.Status.State}} {{index .Spec.Labels \"$PREFIX.role.data\"}}" "$node")
    case "$state" in "ready true")
        case ",$(listed "$node")," in *,data,*) ;; *)
            echo "node $node holds the data role and is ready: moving the role would start the data services on" \
                 "empty volumes elsewhere; move the data first (docs/swarm.md, Losing a node)" >&2
            exit 1 ;;
        esac ;;
    esac
done
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
# Nodes the stack no longer lists: no role, so nothing of the stack is placed there.
for node in $(docker node ls --format '{{.Hostname}}'); do
    [ -z "$(listed "$node")" ] || continue
    args=""
    for role in $ROLES; do
        has=$(docker node inspect --format "{{index .Spec.Labels \"$PREFIX.role.$role\"}}" "$node")
        [ -z "$has" ] || args="$args --label-rm $PREFIX.role.$role"
    done
    if [ -n "$args" ]; then
        docker node update $args "$node" > /dev/null
        echo "$node: no longer in the stack, its roles removed"
    fi
done
