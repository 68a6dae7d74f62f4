"""The off-site bucket and its IAM user under the Pulumi mocks: in stage and prod,
with every protection the issue asks for; in dev, none (dev copies into MinIO)."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest

import harness
from components.backups.offsite import BUCKET_ACTIONS, OBJECT_ACTIONS
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
    mc_host = {harness.unwrap(e).split("=", 1)[0]: e for e in stack("dev").containers()["dev-backup"].inputs["envs"]}
    assert harness.unwrap(mc_host["MC_HOST_offsite"]).endswith("@minio:9000")


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
def test_lifecycle_expires_sets_after_the_retention(name):
    days = defaults_for(name)["backups"]["retentionDays"]
    rules = {r["filter"]["prefix"]: r for r in one(name, "BucketLifecycleConfiguration").plain("rules")}
    assert rules["sets/"]["expiration"] == {"days": days} and rules["sets/"]["status"] == "Enabled"
    assert rules["minio/"]["noncurrentVersionExpiration"] == {"noncurrentDays": days}
    # An overwritten set stays recoverable for the whole retention.
    assert rules["sets/"]["noncurrentVersionExpiration"] == {"noncurrentDays": days}
    assert all(r["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1} for r in rules.values())


@pytest.mark.parametrize("name", S3_STACKS)
def test_the_job_user_may_only_add_and_read_backups_in_this_bucket(name):
    user = one(name, "iam/user:User")
    policy = one(name, "iam/userPolicy:UserPolicy")
    assert policy.plain("user") == user.plain("name") == f"shia-chatbot-{name}-backup"
    arn = f"arn:aws:s3:::{bucket_name(name)}"
    granted = {(action, s["Resource"]) for s in json.loads(policy.plain("policy"))["Statement"]
               for action in s["Action"] if s["Effect"] == "Allow"}
    assert granted == {(a, arn) for a in BUCKET_ACTIONS} | {(a, f"{arn}/*") for a in OBJECT_ACTIONS}
    assert not any(action.startswith("s3:Delete") or "*" in action for action, _ in granted)
    # That inline policy is all it has: no other IAM resource attaches more.
    iam_types = {r.type for r in stack(name).resources if r.type.startswith("aws:iam/")}
    assert iam_types == {"aws:iam/user:User", "aws:iam/userPolicy:UserPolicy", "aws:iam/accessKey:AccessKey"}


@pytest.mark.parametrize("name", S3_STACKS)
def test_the_key_reaches_the_job_only_as_secrets(name):
    key = one(name, "iam/accessKey:AccessKey")
    assert key.plain("user") == f"shia-chatbot-{name}-backup"
    assert "secret" in key.request.additionalSecretOutputs
    entries = {harness.unwrap(e).split("=", 1)[0]: e for e in stack(name).containers()[f"{name}-backup"].inputs["envs"]}
    assert harness.is_secret(entries["MC_HOST_offsite"])
    key_secret = harness.mock_password(f"{name}-backup-offsite-writer-key", 40, None)
    assert harness.unwrap(entries["MC_HOST_offsite"]).startswith(
        f"MC_HOST_offsite=https://{name}-backup-offsite-writer-key-id:{key_secret}@")
    assert harness.unwrap(entries["MC_HOST_offsite"]).endswith(f"@s3.{defaults_for(name)['backups']['s3Region']}.amazonaws.com")


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
