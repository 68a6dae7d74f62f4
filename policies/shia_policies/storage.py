"""Data that must survive: protected prod volumes, and backups on a schedule into a safe bucket."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from pulumi_policy import PolicyResource, ReportViolation, ResourceValidationArgs, Severity, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from shia_policies.resources import (
    DATA_SERVICES, LABEL_PREFIX, VOLUME, Container, containers, known_items, label_map,
)
from shia_policies.spec import DISABLED, MANDATORY, Check, Levels, Rule, Threshold


def data_volumes_protected(c: Check, args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == VOLUME:
        name = args.props.get("name") or args.name
        service = label_map(args.props).get(f"{LABEL_PREFIX}.service")
        # `_data` is the naming helper's promise of data that must survive;
        # rebuildable volumes (Prometheus' tsdb, ...) are named for their content.
        if (name.endswith("_data") or service in DATA_SERVICES) and not args.opts.protect:
            report(f"data volume {name!r} is not protected: `pulumi destroy` or a rename would delete it. "
                   "Set protect and retain_on_delete (policies see protect only; the analyzer protocol "
                   "does not carry retain_on_delete).")
        return
    container = Container.of(args.resource_type, args.props)
    if container is not None and container.service in DATA_SERVICES:
        named = [v for v in known_items(container.props.get("volumes"))[0] if v.get("volumeName")]
        if not named:
            report(f"{container.service} keeps its data in the container layer: a replacement loses it. "
                   "Mount a named volume.")


# Runs per day each environment needs from its most frequent backup job.
REQUIRED_RUNS_PER_DAY = {"dev": 0, "stage": 1, "prod": 24}
CADENCE = {0: "none", 1: "daily", 24: "hourly+daily"}

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
ENCRYPTION = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
              "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
PUBLIC_ACCESS_BLOCK = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
LIFECYCLE = ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
             "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2")
PUBLIC_ACLS = ("public-read", "public-read-write", "authenticated-read")
BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


BACKUP_JOB = "/bin/backup "  # the command a backup line of BACKUP_CRONTAB runs
CRON_MACROS = {"@hourly": 24, "@daily": 1, "@midnight": 1}


def runs_per_day(cron_line: str) -> float:
    """How often a crontab line runs per day; 0 for anything rarer than daily or unreadable."""
    fields = cron_line.split()
    if fields and fields[0].startswith("@"):
        return CRON_MACROS.get(fields[0], 0)
    if len(fields) < 6 or any(f != "*" for f in fields[2:5]):
        return 0
    try:
        return _field_count(fields[0], 0, 59) * _field_count(fields[1], 0, 23)
    except ValueError:
        return 0


def _field_count(field: str, first: int, last: int) -> float:
    """How many values a cron field takes: `*`, `a-b`, `n`, lists, and `/step`."""
    count = 0.0
    for item in field.split(","):
        base, _, step = item.partition("/")
        low, _, high = (f"{first}-{last}" if base == "*" else base).partition("-")
        size = int(high or low) - int(low) + 1
        count += -(-size // int(step)) if step else size
    return count


def _backup_container(args: StackValidationArgs) -> Optional[tuple[PolicyResource, Container]]:
    return next(((r, ct) for r, ct in containers(args.resources)
                 if ct.service == "backup" or "BACKUP_CRONTAB" in ct.env.values), None)


def backup_policy(c: Check, args: StackValidationArgs, report: ReportViolation) -> None:
    required, minimum = REQUIRED_RUNS_PER_DAY[c.env], c.settings["minRetentionDays"]
    found = _backup_container(args)
    if found is None:
        if required:
            report(f"no backup container (with BACKUP_CRONTAB) in the stack: {c.env} needs "
                   f"{CADENCE[required]} backups.")
        return
    resource, container = found
    crontab, retention = container.env.get("BACKUP_CRONTAB"), container.env.get("RETENTION_DAYS")
    # Plain settings in this program; were they ever computed, nothing here could be judged yet.
    container.env.settle("BACKUP_CRONTAB", "RETENTION_DAYS")
    # Backup lines only: the crontab also refreshes the WAL archiving metrics each minute.
    frequency = max((runs_per_day(line) for line in (crontab or "").splitlines() if BACKUP_JOB in line), default=0)
    if frequency < required:
        report(f"the most frequent backup job runs {frequency:g} times a day; {c.env} needs "
               f"{CADENCE[required]}.", resource.urn)
    if frequency and not (retention and retention.isdigit() and int(retention) >= minimum):
        report(f"RETENTION_DAYS={retention}; {c.env} keeps backups at least {minimum} days.", resource.urn)
    kept = max(minimum, int(retention)) if retention and retention.isdigit() else minimum
    for bucket in args.resources:
        if bucket.resource_type in BUCKETS and "backup" in _bucket_name(bucket).lower():
            _check_bucket(bucket, args.resources, kept, report)


def _bucket_name(bucket: PolicyResource) -> str:
    return bucket.props.get("bucket") or bucket.props.get("bucketPrefix") or bucket.name


def _configuring(bucket: PolicyResource, resources: Iterable[PolicyResource], types: tuple[str, ...]):
    """Bucket sub-resources of `types` whose `bucket` input is this bucket (by dependency or by name)."""
    for resource in resources:
        if resource.resource_type not in types:
            continue
        if any(d.urn == bucket.urn for d in resource.property_dependencies.get("bucket", [])):
            yield resource
            continue
        try:
            if resource.props.get("bucket") == _bucket_name(bucket):
                yield resource
        except UnknownValueError:
            continue  # an id known only after deploy; the dependency above links it


def _check_bucket(bucket: PolicyResource, resources: list[PolicyResource], retention: int,
                  report: ReportViolation) -> None:
    props, name = bucket.props, _bucket_name(bucket)

    def attached(types):
        return list(_configuring(bucket, resources, types))

    versioned = (props.get("versioning") or {}).get("enabled") or any(
        (v.props.get("versioningConfiguration") or {}).get("status") == "Enabled" for v in attached(VERSIONING))
    if not versioned:
        report(f"backup bucket {name!r} is not versioned: an overwrite or delete loses the backup.", bucket.urn)
    encrypted = _sse_algorithm((props.get("serverSideEncryptionConfiguration") or {}).get("rule")) or any(
        _sse_algorithm(rule) for e in attached(ENCRYPTION) for rule in known_items(e.props.get("rules"))[0])
    if not encrypted:
        report(f"backup bucket {name!r} has no server-side encryption configured.", bucket.urn)
    if props.get("acl") in PUBLIC_ACLS:
        report(f"backup bucket {name!r} has acl {props.get('acl')}.", bucket.urn)
    if not any(all(b.props.get(flag) for flag in BLOCK_FLAGS) for b in attached(PUBLIC_ACCESS_BLOCK)):
        report(f"backup bucket {name!r} has no public access block with all four flags set.", bucket.urn)
    expiries = _inline_expiries(props) + [days for lc in attached(LIFECYCLE) for days in _expiries(lc.props)]
    if not expiries:
        report(f"backup bucket {name!r} has no lifecycle expiry of noncurrent versions: what the backup tools "
               "delete is kept (and paid for) forever.", bucket.urn)
    current = [days for kind, days in expiries if kind == "current"]
    if current:
        report(f"backup bucket {name!r} expires current backups after {min(current)} days whether or not a "
               "newer one exists: if the backup job stops, every off-site copy is gone then. Let the backup "
               "tools' retention delete, and expire only noncurrent versions, as a backstop.", bucket.urn)
    noncurrent = [days for kind, days in expiries if kind == "noncurrent"]
    if noncurrent and min(noncurrent) < retention:
        report(f"backup bucket {name!r} removes deleted or overwritten backups after {min(noncurrent)} days, "
               f"before the {retention}-day retention.", bucket.urn)


def _sse_algorithm(rule: Optional[Any]) -> Optional[str]:
    return ((rule or {}).get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm")


def _inline_expiries(props) -> list[tuple[str, int]]:
    return [("current", int(rule["expiration"]["days"])) for rule in known_items(props.get("lifecycleRules"))[0]
            if rule.get("enabled") and (rule.get("expiration") or {}).get("days")]


def _expiries(props) -> list[tuple[str, int]]:
    """("current" | "noncurrent", days) of each enabled lifecycle rule's expiry.
    Only current objects count against the retention: noncurrent versions are
    the copies versioning keeps after an overwrite or delete."""
    found = []
    for rule in known_items(props.get("rules"))[0]:
        if rule.get("status") != "Enabled":
            continue
        for kind, days in (("current", (rule.get("expiration") or {}).get("days")),
                           ("noncurrent", (rule.get("noncurrentVersionExpiration") or {}).get("noncurrentDays"))):
            if days:
                found.append((kind, int(days)))
    return found


RULES = [
    Rule(
        name="data-volumes-protected",
        concern="storage",
        description="Prod data volumes ('<env>_<service>_data', or a data service's) are protected (and "
                    "retained on delete), and every data service keeps its data on a named volume.",
        remediation="Create data volumes with components/host/containers.py's data_volume (protect and "
                    "retain_on_delete in prod) and mount them on the service's data path.",
        severity=Severity.HIGH,
        levels=Levels(dev=DISABLED, stage=DISABLED, prod=MANDATORY,
                      why="dev and stage data is rebuilt from fixtures or prod backups, and protect would "
                          "block tearing those stacks down."),
        check=data_volumes_protected,
    ),
    Rule(
        name="backup-policy",
        concern="storage",
        description="The backup container's schedule (BACKUP_CRONTAB) runs hourly+daily in prod and at "
                    "least daily in stage, and keeps backups (RETENTION_DAYS) at least the configured "
                    "days; an S3 backup bucket is versioned, encrypted and not public, and its lifecycle "
                    "never expires current backups (a stopped job keeps its last copies) while it does "
                    "expire noncurrent versions, not before the retention.",
        remediation="Set backups.schedule / backups.retentionDays in Pulumi.<stack>.yaml (defaults in "
                    "settings/defaults.py; components/backups/backups.py turns them into the container's "
                    "environment); give the bucket BucketVersioning, "
                    "BucketServerSideEncryptionConfiguration, BucketPublicAccessBlock and "
                    "BucketLifecycleConfiguration resources.",
        severity=Severity.HIGH,
        stack_wide=True,
        levels=Levels(dev=DISABLED, stage=MANDATORY, prod=MANDATORY,
                      why="dev has no backups by design; stage restores are how prod's are tested."),
        check=backup_policy,
        thresholds={
            "minRetentionDays": Threshold("Fewest days a backup is kept.", {"type": "integer", "minimum": 1}),
        },
    ),
]
