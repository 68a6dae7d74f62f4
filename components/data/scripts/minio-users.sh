# MinIO's users and policies, made inside the MinIO container with its
# root credentials (MINIO_ROOT_USER, MINIO_ROOT_PASSWORD: its own environment).
# Idempotent: re-run, it leaves what exists and sets each user's secret again
# (that is how a rotated secret takes effect). Shell builtins and mc only (the
# MinIO image has no grep).
#
# Environment (plain values): MINIO_ADDRESS (default 127.0.0.1:9000), USERS (space-separated
# `user:policy` pairs, user names in lowercase letters), POLICY_DIR (where to
# write the policy documents), and for each user U the variable POLICY_U
# holding its policy's JSON document.
# Stdin: one secret a line, in the order of USERS (mc reads each from its stdin,
# so no secret is on a command line).
set -eu
export MC_HOST_local="http://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@${MINIO_ADDRESS:-127.0.0.1:9000}"
for pair in $USERS; do
    user=${pair%%:*}
    policy=${pair#*:}
    case $user in *[!a-z]* | "") echo "minio-users.sh: bad user name '$user'" >&2; exit 1 ;; esac
    IFS= read -r secret || { echo "minio-users.sh: no secret for $user on stdin" >&2; exit 1; }
    eval "document=\${POLICY_$user:-}"
    [ -n "$document" ] || { echo "minio-users.sh: POLICY_$user is not set" >&2; exit 1; }
    printf '%s\n' "$document" > "$POLICY_DIR/$policy.json"
    mc admin policy create local "$policy" "$POLICY_DIR/$policy.json"
    printf '%s\n' "$secret" | mc admin user add local "$user"
    # MinIO refuses to attach a policy a second time: that counts as done.
    if ! mc admin policy attach local "$policy" --user "$user"; then
        case $(mc admin user info local "$user") in
            *"PolicyName: "*"$policy"*) ;;
            *) echo "minio-users.sh: cannot attach $policy to $user" >&2; exit 1 ;;
        esac
    fi
done
