# MinIO's buckets, users and policies, made inside the MinIO container with its
# root credentials (MINIO_ROOT_USER, MINIO_ROOT_PASSWORD: its own environment).
# Idempotent: re-run, it leaves what exists and sets each user's secret again
# (that is how a rotated secret takes effect).
#
# Environment (plain values): MINIO_ADDRESS (default 127.0.0.1:9000), BUCKETS (space-separated), VERSIONED (one bucket),
# USERS (space-separated `user:policy` pairs), POLICY_DIR (where to write the
# policy documents), and for each policy P the variable POLICY_<P with - as _>
# holding its JSON document.
# Stdin: one secret a line, in the order of USERS (mc reads each from its stdin,
# so no secret is on a command line).
set -eu
export MC_HOST_local="http://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@${MINIO_ADDRESS:-127.0.0.1:9000}"
# shellcheck disable=SC2086 # BUCKETS is a list
for bucket in $BUCKETS; do
    mc mb --ignore-existing "local/$bucket"
done
mc version enable "local/$VERSIONED"
for pair in $USERS; do
    user=${pair%%:*}
    policy=${pair#*:}
    IFS= read -r secret || { echo "minio-users.sh: no secret for $user on stdin" >&2; exit 1; }
    document=$(printenv "POLICY_$(printf '%s' "$policy" | tr '-' '_')") ||
        { echo "minio-users.sh: no POLICY_ variable for $policy" >&2; exit 1; }
    printf '%s\n' "$document" > "$POLICY_DIR/$policy.json"
    mc admin policy create local "$policy" "$POLICY_DIR/$policy.json"
    printf '%s\n' "$secret" | mc admin user add local "$user"
    # MinIO refuses to attach a policy a second time: that counts as done.
    mc admin policy attach local "$policy" --user "$user" ||
        mc admin user info local "$user" | grep -q "^PolicyName: .*$policy"
done
