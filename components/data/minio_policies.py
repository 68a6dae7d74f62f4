"""MinIO's users and their IAM policies: the app's and the backup job's.

The root credentials stay in the MinIO container (its bucket-and-users step
logs in with them); the app and the backup job get users of their own, each
with one canned policy attached. Shapes: `policy(...)` returns the policy
document (IAM JSON) as a dict.
"""

from __future__ import annotations

import json
from pathlib import Path

APP_USER = "app"
BACKUP_USER = "backup"
APP_POLICY = "app-documents"
BACKUP_POLICY = "backup-job"
# (user, policy), in the order the step reads their secrets from stdin.
USERS = ((APP_USER, APP_POLICY), (BACKUP_USER, BACKUP_POLICY))
USERS_SCRIPT = (Path(__file__).parent / "scripts" / "minio-users.sh").read_text()

# Bucket-level calls every S3 client makes around object calls (mc's listing,
# its region lookup, multipart uploads of large files).
_BUCKET_READ = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
_OBJECT_WRITE = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]


def _arn(bucket: str, objects: bool = False) -> str:
    return f"arn:aws:s3:::{bucket}" + ("/*" if objects else "")


def _allow(actions: list[str], *resources: str) -> dict:
    return {"Effect": "Allow", "Action": actions, "Resource": list(resources)}


def app_policy(documents: str) -> dict:
    """Read, write and delete objects in the documents bucket; nothing else (no
    bucket creation or deletion, no other bucket, no admin API)."""
    return {"Version": "2012-10-17", "Statement": [
        _allow(_BUCKET_READ, _arn(documents)),
        _allow(["s3:GetObject", "s3:DeleteObject", *_OBJECT_WRITE], _arn(documents, objects=True)),
    ]}


def backup_policy(documents: str, backups: str) -> dict:
    """lib/minio.sh: read the documents bucket (backup: mc mirror, mc ls, mc cat)
    and write it back (restore: mc mb --ignore-existing, then mc cp; no delete:
    a restore adds the snapshot's objects, it removes none); restic's
    repository in the backups bucket (dev's off-site target): read, write and
    delete (its prune and lock files)."""
    return {"Version": "2012-10-17", "Statement": [
        _allow([*_BUCKET_READ, "s3:CreateBucket"], _arn(documents)),
        _allow(["s3:GetObject", *_OBJECT_WRITE], _arn(documents, objects=True)),
        _allow([*_BUCKET_READ, "s3:GetBucketVersioning", "s3:ListBucketVersions"], _arn(backups)),
        _allow(["s3:GetObject", "s3:DeleteObject", *_OBJECT_WRITE], _arn(backups, objects=True)),
    ]}


def users_step_env(documents: str, backups: str, policy_dir: str = "/tmp") -> dict[str, str]:
    """The plain environment of scripts/minio-users.sh: users, their policies' documents."""
    documents_of = {APP_USER: app_policy(documents), BACKUP_USER: backup_policy(documents, backups)}
    return {"USERS": " ".join(f"{user}:{policy}" for user, policy in USERS), "POLICY_DIR": policy_dir,
            **{f"POLICY_{user}": json.dumps(doc, separators=(",", ":")) for user, doc in documents_of.items()}}
