"""Where backups are copied off the host: an S3 bucket made here (stage,
prod) or the stack's own MinIO bucket `<env>-backups` (dev).

Two repositories live in it, each written by its own tool: pgBackRest's repo2
under `pgbackrest/` (PostgreSQL: backups and the WAL archive) and a restic
repository under `restic/` (Redis, Qdrant, MinIO). Both tools expire what
their retention no longer needs, so the job's key may delete objects; the
bucket keeps every deleted or overwritten object as a noncurrent version for
BACKSTOP_DAYS past the retention, which whoever holds the host cannot remove.
Nothing current ever expires by a lifecycle rule: if the job stops, the last
copies stay (and BackupStale pages).

The S3 bucket has versioning, default encryption, every public access blocked
and a TLS-only policy. Its IAM user may list the bucket, read and write objects
under those two prefixes and delete what the tools' retention drops (DELETABLE),
nothing else.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws.iam as iam
import pulumi_aws.s3 as s3
from pulumi_aws import Provider, ProviderDefaultTagsArgs

from components.secrets import Secrets
from settings.load import PROJECT
from settings.model import StackConfig
from components.data import minio_policies
from settings.naming import MINIO_PORT, Naming

# One prefix per tool (restic and pgBackRest each own the layout under theirs).
RESTIC_PREFIX = "restic"
PGBACKREST_PREFIX = "pgbackrest"
# How long a deleted or overwritten backup object stays recoverable beyond the
# retention: the copies outlive a compromised host by this long.
BACKSTOP_DAYS = 90

BUCKET_ACTIONS = ("s3:GetBucketLocation", "s3:ListBucket")
# Both tools write and read their repository, uploading in parts.
OBJECT_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
# What each deletes: restic its locks (every command), forgotten snapshots and
# pruned index and pack files, never its keys or config; pgBackRest what expire
# drops, anywhere in its repository.
DELETABLE = (*(f"{RESTIC_PREFIX}/{folder}/*" for folder in ("locks", "snapshots", "index", "data")),
             f"{PGBACKREST_PREFIX}/*")


@dataclass(frozen=True)
class OffsiteTarget:
    """What the backup job (and PostgreSQL's archive_command) need to reach the off-site bucket."""

    bucket: str
    endpoint: str  # host[:port], no scheme
    region: str
    tls: bool  # pgBackRest's S3 driver speaks only TLS: without it, PostgreSQL has no off-site repository
    path_style: bool  # MinIO serves buckets as paths; AWS as host names
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]  # secret
    needs_egress: bool  # AWS is off the host; the stack's MinIO is on the backend network
    # What must exist before the first upload: the bucket with its policy,
    # versioning and lifecycle, and the key's permissions (depending on a
    # component waits for all its children).
    ready: tuple[pulumi.Resource, ...] = ()

    @property
    def restic_repository(self) -> str:
        """The restic repository URL (no credentials: those are AWS_* variables)."""
        scheme = "https" if self.tls else "http"
        return f"s3:{scheme}://{self.endpoint}/{self.bucket}/{RESTIC_PREFIX}"


def offsite_target(cfg: StackConfig, naming: Naming, secrets: Secrets) -> OffsiteTarget:
    """The target backups.offsite selects for this stack."""
    if cfg.backups.offsite == "s3":
        offsite = S3Offsite(naming.resource("backup-offsite"), S3OffsiteArgs(
            naming=naming, region=cfg.backups.s3_region,
            bucket=cfg.backups.s3_bucket or naming.global_bucket("backups"),
            retention_days=cfg.backups.retention_days,
        ))
        return dataclasses.replace(offsite.target, ready=(offsite,))
    return OffsiteTarget(
        bucket=naming.bucket("backups"), endpoint=f"minio:{MINIO_PORT}", region="us-east-1", tls=False,
        path_style=True, access_key_id=minio_policies.BACKUP_USER,
        secret_access_key=secrets["minioBackupPassword"], needs_egress=False)


def stack_minio_url(secrets: Secrets) -> pulumi.Output[str]:
    """The stack's MinIO as an mc alias URL, reached by its alias on the backend network (secret)."""
    return pulumi.Output.secret(pulumi.Output.format(
        "http://{0}:{1}@minio:{2}", minio_policies.BACKUP_USER, secrets["minioBackupPassword"], MINIO_PORT))


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def tls_only_policy(bucket: str) -> str:
    arn = bucket_arn(bucket)
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })


def backup_job_policy(bucket: str) -> str:
    arn = bucket_arn(bucket)
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "FindAndListTheBucket", "Effect": "Allow", "Action": list(BUCKET_ACTIONS), "Resource": arn},
            {"Sid": "KeepTheRepositories", "Effect": "Allow", "Action": list(OBJECT_ACTIONS),
             "Resource": [f"{arn}/{RESTIC_PREFIX}/*", f"{arn}/{PGBACKREST_PREFIX}/*"]},
            {"Sid": "DeleteWhatRetentionDrops", "Effect": "Allow", "Action": ["s3:DeleteObject"],
             "Resource": [f"{arn}/{path}" for path in DELETABLE]},
        ],
    })


def lifecycle_rules(retention_days: int) -> list[s3.BucketLifecycleConfigurationRuleArgs]:
    """A backstop only: a noncurrent version (deleted or overwritten by the job)
    goes BACKSTOP_DAYS after the retention, then its delete marker; current
    objects never expire here (the tools' retention removes them, so a stopped
    job keeps its last copies). Unfinished uploads go after a day."""
    return [s3.BucketLifecycleConfigurationRuleArgs(
        id="backstop-for-deleted-backups", status="Enabled",
        filter=s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
        noncurrent_version_expiration=s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
            noncurrent_days=retention_days + BACKSTOP_DAYS),
        expiration=s3.BucketLifecycleConfigurationRuleExpirationArgs(expired_object_delete_marker=True),
        abort_incomplete_multipart_upload=s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
            days_after_initiation=1),
    )]


@dataclass(frozen=True, kw_only=True)
class S3OffsiteArgs:
    naming: Naming
    region: str
    bucket: str
    retention_days: int


class S3Offsite(pulumi.ComponentResource):
    bucket: s3.Bucket
    user: iam.User
    access_key: iam.AccessKey
    target: OffsiteTarget

    def __init__(self, name: str, args: S3OffsiteArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:backup:S3Offsite", name, None, opts)
        env = args.naming.env
        provider = Provider(f"{name}-aws", region=args.region, default_tags=ProviderDefaultTagsArgs(
            tags={"project": PROJECT, "environment": env}), opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        # The copies must outlive the stack: kept on delete, and protected in prod.
        self.bucket = s3.Bucket(name, bucket=args.bucket, force_destroy=False, opts=pulumi.ResourceOptions.merge(
            child, pulumi.ResourceOptions(retain_on_delete=True, protect=env == "prod")))
        bucket = self.bucket.id
        s3.BucketOwnershipControls(f"{name}-ownership", bucket=bucket, rule=s3.BucketOwnershipControlsRuleArgs(
            object_ownership="BucketOwnerEnforced"), opts=child)
        public_block = s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=bucket, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child)
        versioning = s3.BucketVersioning(
            f"{name}-versioning", bucket=bucket,
            versioning_configuration=s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"), opts=child)
        s3.BucketServerSideEncryptionConfiguration(f"{name}-encryption", bucket=bucket, rules=[
            s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=(
                    s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"))),
        ], opts=child)
        # Noncurrent-version rules mean something only once versioning is on.
        s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", bucket=bucket, rules=lifecycle_rules(args.retention_days),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[versioning])))
        # After the public access block: S3 refuses policy changes while that is being set.
        s3.BucketPolicy(f"{name}-tls-only", bucket=bucket, policy=tls_only_policy(args.bucket),
                        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[public_block])))

        self.user = iam.User(f"{name}-writer", name=f"{PROJECT}-{env}-backup", path=f"/{PROJECT}/", opts=child)
        iam.UserPolicy(f"{name}-writer-policy", user=self.user.name, policy=backup_job_policy(args.bucket), opts=child)
        # Its `secret` is a secret output in the provider's schema, so in state too.
        self.access_key = iam.AccessKey(f"{name}-writer-key", user=self.user.name, opts=child)
        self.target = OffsiteTarget(
            bucket=args.bucket, endpoint=f"s3.{args.region}.amazonaws.com", region=args.region, tls=True,
            path_style=False, access_key_id=self.access_key.id,
            secret_access_key=pulumi.Output.secret(self.access_key.secret), needs_egress=True,
        )
        self.register_outputs({"bucket": args.bucket, "user": self.user.name})
