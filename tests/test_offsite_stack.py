"""The off-site bucket and its IAM user under the Pulumi mocks: in stage and prod,
with every protection the issues ask for; in dev, none (dev copies into MinIO)."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest

import harness
from components.backups.offsite import BACKSTOP_DAYS, BUCKET_ACTIONS, OBJECT_ACTIONS
from settings.defaults import defaults_for
from settings.load import ConfigError, parse

S3_STACKS = ("stage", "prod")


@lru_cache(maxsize=None)
def stack(name: str) -> harness.Run:
    run = harness.run(name)
    assert run.error is None, run.error
    return run


def one(name: str, type_suffix: str) -> harness.Registered:
    (resource,) = [r for r in stack(name).resources if r.type.endswith(type_suffix)]
    return resource


def bucket_name(name: str) -> str:
    return f"shia-chatbot-{name}-backups"  # Naming.global_bucket, written out


def test_dev_makes_no_aws_resource():
    assert [r.type for r in stack("dev").resources if r.type.startswith(("aws:", "pulumi:providers:aws"))] == []
    entries = {harness.unwrap(e).split("=", 1)[0]: e for e in stack("dev").containers()["dev-backup"].inputs["envs"]}
    assert harness.unwrap(entries["RESTIC_OFFSITE_REPOSITORY"]) == "RESTIC_OFFSITE_REPOSITORY=s3:http://minio:9000/dev-backups/restic"
    assert harness.is_secret(entries["AWS_ACCESS_KEY_ID"]) and harness.is_secret(entries["AWS_SECRET_ACCESS_KEY"])


@pytest.mark.parametrize("name", S3_STACKS)
def test_bucket_is_named_from_config_kept_and_in_the_configured_region(name):
    bucket = one(name, "/bucket:Bucket")
    assert bucket.plain("bucket") == bucket_name(name)
    assert bucket.plain("forceDestroy") is False
    assert bucket.retain_on_delete and bucket.protect == (name == "prod")
    assert one(name, "providers:aws").plain("region") == defaults_for(name)["backups"]["s3Region"]


@pytest.mark.parametrize("name", S3_STACKS)
def test_versioning_encryption_public_block_and_ownership(name):
    bucket_id = f"{name}-backup-offsite-id"
    versioning = one(name, "BucketVersioning")
    assert versioning.plain("bucket") == bucket_id
    assert versioning.plain("versioningConfiguration") == {"status": "Enabled"}
    (rule,) = one(name, "BucketServerSideEncryptionConfiguration").plain("rules")
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    block = one(name, "BucketPublicAccessBlock")
    assert all(block.plain(k) is True for k in
               ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert one(name, "BucketOwnershipControls").plain("rule") == {"objectOwnership": "BucketOwnerEnforced"}


@pytest.mark.parametrize("name", S3_STACKS)
def test_bucket_policy_refuses_every_request_without_tls(name):
    (statement,) = json.loads(one(name, "BucketPolicy").plain("policy"))["Statement"]
    arn = f"arn:aws:s3:::{bucket_name(name)}"
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*" and statement["Action"] == "s3:*"
    assert sorted(statement["Resource"]) == [arn, f"{arn}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("name", S3_STACKS)
def test_lifecycle_is_a_backstop_that_never_expires_a_current_backup(name):
    days = defaults_for(name)["backups"]["retentionDays"]
    (rule,) = one(name, "BucketLifecycleConfiguration").plain("rules")
    assert rule["status"] == "Enabled" and rule["filter"] == {"prefix": ""}
    # If the job stops, its last copies stay: nothing current expires.
    assert rule["expiration"] == {"expiredObjectDeleteMarker": True}
    # What the tools delete (or a stolen key deletes) stays recoverable for the backstop.
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": days + BACKSTOP_DAYS}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}


@pytest.mark.parametrize("name", S3_STACKS)
def test_the_job_user_may_only_keep_its_two_repositories_in_this_bucket(name):
    user = one(name, "iam/user:User")
    policy = one(name, "iam/userPolicy:UserPolicy")
    assert policy.plain("user") == user.plain("name") == f"shia-chatbot-{name}-backup"
    arn = f"arn:aws:s3:::{bucket_name(name)}"
    granted = {(action, resource) for s in json.loads(policy.plain("policy"))["Statement"] if s["Effect"] == "Allow"
               for action in s["Action"]
               for resource in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])}
    kept = {(a, f"{arn}/{prefix}/*") for a in OBJECT_ACTIONS for prefix in ("restic", "pgbackrest")}
    # restic deletes locks, forgotten snapshots and pruned packs, never its keys or
    # config; pgBackRest what expire drops. On this versioned bucket a delete leaves a
    # noncurrent version; removing a version, or the versioning, is not granted.
    deletes = {("s3:DeleteObject", f"{arn}/restic/{folder}/*") for folder in ("locks", "snapshots", "index", "data")}
    deletes.add(("s3:DeleteObject", f"{arn}/pgbackrest/*"))
    assert granted == {(a, arn) for a in BUCKET_ACTIONS} | kept | deletes
    # That inline policy is all it has: no other IAM resource attaches more.
    iam_types = {r.type for r in stack(name).resources if r.type.startswith("aws:iam/")}
    assert iam_types == {"aws:iam/user:User", "aws:iam/userPolicy:UserPolicy", "aws:iam/accessKey:AccessKey"}


@pytest.mark.parametrize("name", S3_STACKS)
def test_the_key_reaches_the_job_only_as_secrets(name):
    key = one(name, "iam/accessKey:AccessKey")
    assert key.plain("user") == f"shia-chatbot-{name}-backup"
    assert "secret" in key.request.additionalSecretOutputs
    key_secret = harness.mock_password(f"{name}-backup-offsite-writer-key", 40, None)
    for container, prefix in ((f"{name}-backup", "AWS_"), (f"{name}-backup", "PGBACKREST_REPO2_S3_"),
                              (f"{name}-postgres", "PGBACKREST_REPO2_S3_")):
        entries = {harness.unwrap(e).split("=", 1)[0]: e for e in stack(name).containers()[container].inputs["envs"]}
        key_id, secret = (("ACCESS_KEY_ID", "SECRET_ACCESS_KEY") if prefix == "AWS_" else ("KEY", "KEY_SECRET"))
        assert harness.is_secret(entries[prefix + key_id]) and harness.is_secret(entries[prefix + secret])
        assert harness.unwrap(entries[prefix + key_id]) == f"{prefix}{key_id}={name}-backup-offsite-writer-key-id"
        assert harness.unwrap(entries[prefix + secret]) == f"{prefix}{secret}={key_secret}"


def test_s3_offsite_needs_a_region_and_a_valid_bucket_name():
    raw = {"environment": "stage", "domain": "stage.example.org", "dockerHost": "ssh://deploy@stage.example.org",
           "dockerHostKey": harness.stack_config("stage")["dockerHostKey"],
           "slots": {"blue": {"image": "ghcr.io/shia-chatbot/app:1.0.0", "replicas": 1}},
           "backups": {"s3Region": None},
           # Off-site copies in S3 must page someone (settings/load.py).
           "smtp": {"host": "smtp.example.org", "user": "alerts", "fromEmail": "alerts@example.org"},
           "monitoring": {"alertEmail": ["ops@example.org"]}}
    with pytest.raises(ConfigError, match="needs s3Region"):
        parse(raw, "stage")
    with pytest.raises(ConfigError, match="backups.s3Bucket"):
        parse({**raw, "backups": {"s3Bucket": "Backups.Example"}}, "stage")
    # By default the name comes from the naming helper; a stack may override it.
    assert parse({**raw, "backups": {}}, "stage").backups.s3_bucket is None
    assert stack("stage").named("stage-backup-offsite", "aws:s3/bucket:Bucket").plain("bucket") == bucket_name("stage")
