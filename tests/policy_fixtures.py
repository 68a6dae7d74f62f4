"""One compliant prod plan, in the shapes the program registers, and a way to
run a single policy of the pack over it in-process.

Each rule test takes this plan, changes one property, and runs the real
policy object through the SDK's own deserializer and unknown-checking proxy,
so secrets arrive unwrapped and unknown values raise, as under the engine.
Generated values are made per run (never literals in the repository).
"""

from __future__ import annotations

import base64
import copy
import io
import tarfile
import secrets
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional

from pulumi_policy import (
    PolicyCustomTimeouts, PolicyProviderResource, PolicyResource, PolicyResourceOptions, ResourceValidationArgs,
    StackValidationArgs, StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "policies"))

from shia_policies.catalog import policies_for  # noqa: E402
from shia_policies.stack import StackContext  # noqa: E402

SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
CONTAINER = "docker:index/container:Container"
ENV = "prod"
DOMAIN = "shia-chatbot.example.org"
APP_IMAGE = "ghcr.io/shia-chatbot/app:1.0.0"


def secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIG: SECRET_MARK, "value": value}


def generated(length: int = 32) -> str:
    return secrets.token_hex(length // 2)


@dataclass
class Res:
    """One registered resource: type, logical name, inputs as sent (secret markers kept)."""

    type: str
    name: str
    props: dict[str, Any]
    protect: bool = False
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)  # property -> logical names

    @property
    def urn(self) -> str:
        return f"urn:pulumi:{ENV}::shia-chatbot::{self.type}::{self.name}"

    def but(self, **props: Any) -> "Res":
        """A copy with top-level properties replaced (None removes one)."""
        changed = copy.deepcopy(self.props)
        for key, value in props.items():
            if value is None:
                changed.pop(key, None)
            else:
                changed[key] = value
        return replace(self, props=changed)

    def env(self, key: str, value: Optional[str]) -> "Res":
        """A copy with the `KEY=VALUE` entry of `envs` (plain or secret) replaced by a plain
        one, or (None) removed."""
        def entry_key(entry: Any) -> str:
            return (entry["value"] if isinstance(entry, dict) else entry).partition("=")[0]

        entries = [e for e in self.props.get("envs", []) if entry_key(e) != key]
        if value is not None:
            entries.insert(0, f"{key}={value}")
        return self.but(envs=entries)


def _labels(service: str, slot: Optional[str] = None) -> list[dict[str, str]]:
    labels = {"environment": ENV, "service": service, **({"slot": slot} if slot else {})}
    return [{"label": f"org.shia-chatbot.{k}", "value": v} for k, v in sorted(labels.items())]


def container(name: str, service: str, image: str, envs: list[Any], *, slot: Optional[str] = None,
              **props: Any) -> Res:
    """A container as components/host/containers.py's hardened_container registers it:
    all capabilities dropped, nginx's added back, a read-only root but for qdrant's and the backup's."""
    adds = ["CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"] if service == "nginx" else []
    return Res(CONTAINER, name, {
        "capabilities": {"drops": ["ALL"], "adds": adds}, "readOnly": service != "qdrant",
        "name": name, "image": image, "envs": envs, "labels": _labels(service, slot),
        "restart": "unless-stopped", "memory": 512.0, "logDriver": "json-file",
        "logOpts": {"max-size": "10m", "max-file": "5"}, "securityOpts": ["no-new-privileges:true"],
        "healthcheck": {"tests": ["CMD-SHELL", "true"], "interval": "10s", "retries": 5.0},
        "networksAdvanced": [{"name": f"{ENV}-backend", "aliases": [service]}], "wait": True,
        **props,
    })


def app_envs() -> list[Any]:
    plain = [
        f"ENVIRONMENT={ENV}", "DEBUG=false", "LOG_LEVEL=WARNING", "STRUCTLOG_DEV_MODE=false",
        f"CORS_ORIGINS=https://{DOMAIN},https://www.{DOMAIN}", f"ALLOWED_HOSTS={DOMAIN},www.{DOMAIN}",
        "RATE_LIMIT_PER_MINUTE=60", "RATE_LIMIT_PER_HOUR=1000", f"QDRANT_COLLECTION={ENV}_documents",
        f"MINIO_BUCKET={ENV}-documents", f"QDRANT_URL=http://{ENV}-qdrant:6333",
    ]
    return plain + [
        secret(f"SECRET_KEY={generated(64)}"),
        secret(f"DATABASE_URL=postgresql+asyncpg://{ENV}_shia_chatbot_app:{generated()}@{ENV}-postgres:5432/db"),
        secret(f"REDIS_URL=redis://app:{generated()}@{ENV}-redis:6379/0"),
        "MINIO_ACCESS_KEY=app", secret(f"MINIO_SECRET_KEY={generated(40)}"),
        secret(f"QDRANT_API_KEY={generated(40)}"),
    ]


ROUTER_CONFIG = f"""# The router for {ENV}; do not edit on the host.
js_import router from /etc/nginx/conf.d/router.js;
js_var $slot_file /etc/nginx/conf.d/active-slot;
js_set $app_slot router.slot;
resolver 127.0.0.11 valid=1s ipv6=off;

limit_req_zone $binary_remote_addr zone=per_client:10m rate=60r/m;

server {{
    listen 127.0.0.1:8099;
    location = /router {{
        return 200 "config=0 slot=$app_slot\\n";
    }}
}}

server {{
    listen 80;
    server_name {DOMAIN};
    location /.well-known/acme-challenge/ {{
        root /var/www/certbot;
    }}
    location / {{
        return 301 https://$host$request_uri;
    }}
}}

server {{
    listen 443 ssl http2;
    ssl_certificate /etc/letsencrypt/live/{DOMAIN}/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/{DOMAIN}/privkey.pem;
    server_name {DOMAIN};
    location / {{
        limit_req zone=per_client burst=15 nodelay;
        proxy_pass http://app-$app_slot:8000;
    }}
}}
"""


def router_bundle(config: str) -> str:
    """The router config step's stdin: a base64 tar holding default.conf (and router.js)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in (("default.conf", config), ("router.js", "export default {};\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(buffer.getvalue()).decode()


def router_text(bundle: str) -> str:
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(bundle))) as tar:
        return tar.extractfile("default.conf").read().decode()


def _app_networks(slot: str, index: int) -> list[dict[str, Any]]:
    aliases = [f"app-{slot}-{index}", f"app-{slot}"]
    return [{"name": f"{ENV}-frontend", "aliases": aliases}, {"name": f"{ENV}-backend", "aliases": aliases}]


HOURLY_AND_DAILY = ("30 * * * * /opt/shia-backup/bin/backup redis qdrant minio --reason hourly\n"
                    "0 2 * * * /opt/shia-backup/bin/backup all --reason daily\n"
                    "* * * * * sh /opt/shia-backup/lib/postgres.sh metrics\n")


def _bucket_part(type_: str, suffix: str, props: dict[str, Any]) -> Res:
    # The program passes the bucket's id, known only after deploy; the link is the dependency.
    return Res(type_, f"{ENV}-backup-offsite-{suffix}", {"bucket": f"{ENV}-backup-offsite-id", **props},
               property_dependencies={"bucket": [f"{ENV}-backup-offsite"]})


def compliant_plan() -> dict[str, Res]:
    """Every kind of resource the rules judge, compliant for prod, by logical name."""
    redis_password, minio_password = generated(), generated(40)
    resources = [
        Res("pulumi:pulumi:Stack", f"shia-chatbot-{ENV}", {}),
        Res("pulumi:providers:docker", f"{ENV}-docker-host", {"host": f"ssh://deploy@{ENV}.{DOMAIN}"}),
        Res("docker:index/network:Network", f"{ENV}-backend",
            {"name": f"{ENV}-backend", "internal": True, "labels": _labels("network")[:1]}),
        Res("docker:index/volume:Volume", f"{ENV}_postgres_data",
            {"name": f"{ENV}_postgres_data", "labels": _labels("postgres")}, protect=True),
        Res("docker:index/remoteImage:RemoteImage", f"{ENV}-app-blue-image", {"name": APP_IMAGE, "keepLocally": True}),
        container(f"{ENV}-postgres", "postgres", "shia-chatbot-postgres:0123456789abcdef", [
            f"POSTGRES_USER={ENV}_shia_chatbot", f"POSTGRES_DB={ENV}_shia_chatbot",
            secret(f"POSTGRES_PASSWORD={generated()}")],
            volumes=[{"volumeName": f"{ENV}_postgres_data", "containerPath": "/var/lib/postgresql/data"}]),
        container(f"{ENV}-redis", "redis", "redis:7.2.6-alpine", [
            secret(f"REDIS_PASSWORD={redis_password}"), secret(f"REDISCLI_AUTH={redis_password}")],
            command=["sh", "-c", 'exec redis-server --appendonly yes --requirepass "$REDIS_PASSWORD"'],
            volumes=[{"volumeName": f"{ENV}_redis_data", "containerPath": "/data"}]),
        container(f"{ENV}-qdrant", "qdrant", "qdrant/qdrant:v1.12.4", [
            secret(f"QDRANT__SERVICE__API_KEY={generated(40)}"), "QDRANT__TELEMETRY_DISABLED=true"],
            volumes=[{"volumeName": f"{ENV}_qdrant_data", "containerPath": "/qdrant/storage"}]),
        container(f"{ENV}-minio", "minio", "minio/minio:RELEASE.2024-10-13T13-34-11Z", [
            secret(f"MINIO_ROOT_USER={generated(20)}"), secret(f"MINIO_ROOT_PASSWORD={minio_password}"),
            "MINIO_BROWSER=off"], command=["server", "/data"],
            volumes=[{"volumeName": f"{ENV}_minio_data", "containerPath": "/data"}]),
        container(f"{ENV}-nginx", "nginx", "nginx:1.27.2-alpine", [],
                  ports=[{"internal": 80.0, "external": 80.0}, {"internal": 443.0, "external": 443.0}],
                  volumes=[{"volumeName": f"{ENV}_nginx_conf", "containerPath": "/etc/nginx/conf.d"},
                           {"hostPath": "/etc/letsencrypt", "containerPath": "/etc/letsencrypt", "readOnly": True},
                           {"hostPath": "/var/www/certbot", "containerPath": "/var/www/certbot", "readOnly": True}]),
        container(f"{ENV}-app-blue-1", "app", APP_IMAGE, app_envs(), slot="blue",
                  command=["uvicorn", "src.app.main:app", "--workers", "9", "--port", "8000"],
                  networksAdvanced=_app_networks("blue", 1)),
        container(f"{ENV}-app-blue-2", "app", APP_IMAGE, app_envs(), slot="blue",
                  command=["uvicorn", "src.app.main:app", "--workers", "9", "--port", "8000"],
                  networksAdvanced=_app_networks("blue", 2)),
        container(f"{ENV}-worker-blue", "worker", APP_IMAGE, app_envs(), slot="blue",
                  command=["celery", "-A", "src.app.tasks", "worker", "--loglevel=warning"]),
        container(f"{ENV}-flower", "flower", APP_IMAGE,
                  app_envs() + [secret(f"FLOWER_BASIC_AUTH={ENV}-ops:{generated()}")], slot="blue",
                  command=["celery", "-A", "src.app.tasks", "flower", "--port=5555"]),
        container(f"{ENV}-backup", "backup", "shia-chatbot-backup:b677bbac9d64f08c", [
            f"BACKUP_CRONTAB={HOURLY_AND_DAILY}", "RETENTION_DAYS=30",
            secret(f"MC_HOST_minio=http://backup:{generated(40)}@minio:9000")]),
        Res("command:remote:Command", f"{ENV}-minio-buckets", {
            "create": f"docker exec {ENV}-minio sh -c 'mc mb --ignore-existing local/{ENV}-documents "
                      f"local/{ENV}-backups'"}),
        Res("command:remote:Command", f"{ENV}-router-config",
            {"create": "sh apply.sh", "stdin": router_bundle(ROUTER_CONFIG)}),
        Res("command:remote:Command", f"{ENV}-router-switch", {"create": "sh switch.sh", "stdin": "blue\n"}),
        Res("aws:s3/bucket:Bucket", f"{ENV}-backup-offsite", {"bucket": f"shia-chatbot-{ENV}-backups"}, protect=True),
        _bucket_part("aws:s3/bucketVersioning:BucketVersioning", "versioning",
                     {"versioningConfiguration": {"status": "Enabled"}}),
        _bucket_part("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                     "encryption", {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}),
        _bucket_part("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "public-access",
                     {flag: True for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                              "restrictPublicBuckets")}),
        _bucket_part("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "lifecycle",
                     {"rules": [{"id": "backstop", "status": "Enabled", "expiration": {"expiredObjectDeleteMarker": True},
                                 "noncurrentVersionExpiration": {"noncurrentDays": 120.0}}]}),
    ]
    return {r.name: r for r in resources}


@dataclass
class Outcome:
    violations: list[str]
    # True when the SDK would turn the rest into "can't run policy during preview".
    deferred: bool = False


def evaluate(policy_name: str, plan: Mapping[str, Res], *, stack: str = ENV,
             settings: Optional[Mapping[str, Any]] = None, config: Optional[Mapping[str, Any]] = None,
             only: Optional[str] = None) -> Outcome:
    """Run one policy of the pack, built for `stack`, over `plan` (or only the resource `only`).

    settings: the stack config the pack sees (default: just the environment);
    config: the policy's --policy-pack-config properties."""
    context = StackContext.for_stack(stack, {"environment": stack.split("-")[0], **(settings or {})})
    policy = {p.name: p for p in policies_for(context)}[policy_name]
    outcome = Outcome([])

    def report(message: str, urn: Optional[str] = None) -> None:
        outcome.violations.append(message)

    targets = [plan[only]] if only else list(plan.values())
    if isinstance(policy, StackValidationPolicy):
        calls = [StackValidationArgs(_stack_resources(targets), config)]
    else:
        calls = [ResourceValidationArgs(r.type, _props(r), r.urn, r.name, _options(r), _provider(plan), config)
                 for r in targets]
    for args in calls:  # the SDK runs a policy once per resource, each on its own
        try:
            policy.validate(args, report)
        except UnknownValueError:
            outcome.deferred = True
    return outcome


def _props(resource: Res) -> Mapping[str, Any]:
    return unknown_checking_proxy(deserialize_properties(copy.deepcopy(resource.props)))


def _options(resource: Res) -> PolicyResourceOptions:
    return PolicyResourceOptions(resource.protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _provider(plan: Mapping[str, Res]) -> Optional[PolicyProviderResource]:
    provider = next((r for r in plan.values() if r.type == "pulumi:providers:docker"), None)
    return PolicyProviderResource(provider.type, _props(provider), provider.urn, provider.name) if provider else None


def _stack_resources(targets: list[Res]) -> list[PolicyResource]:
    by_name = {r.name: PolicyResource(r.type, _props(r), r.urn, r.name, _options(r), None, None, [], {})
               for r in targets}
    for resource in targets:
        by_name[resource.name].property_dependencies = {
            key: [by_name[name] for name in names if name in by_name]
            for key, names in resource.property_dependencies.items()}
    return list(by_name.values())


# ---- runtime swarm (components/swarm/service.py's shape) ----------------------------------------

SWARM_NODES = {"m1": {"dockerHost": "ssh://deploy@m1", "roles": ["manager", "edge", "data"]},
               "a1": {"dockerHost": "ssh://deploy@a1", "roles": ["app"]},
               "a2": {"dockerHost": "ssh://deploy@a2", "roles": ["app"]}}


def swarm_service(name: str, service: str, role: str, replicas: Optional[int], env: dict[str, str],
                  secrets_: tuple[str, ...] = ()) -> Res:
    """A Service as the program registers one, compliant for prod."""
    return Res("docker:index/service:Service", name, {
        "name": name,
        "labels": [{"label": "org.shia-chatbot.environment", "value": ENV},
                   {"label": "org.shia-chatbot.service", "value": service}],
        "taskSpec": {
            "containerSpec": {
                "image": APP_IMAGE, "env": env, "readOnly": True, "capDrops": ["ALL"],
                "healthcheck": {"tests": ["CMD-SHELL", "true"], "interval": "5s", "retries": 3},
                "secrets": [{"secretId": f"{f}-id", "fileName": f"/run/secrets/{f}"} for f in secrets_],
            },
            "resources": {"limits": {"memoryBytes": 512 * 1024 * 1024}},
            "restartPolicy": {"condition": "any"},
            "logDriver": {"name": "json-file", "options": {"max-size": "10m", "max-file": "5"}},
            "placement": {"constraints": [f"node.labels.org.shia-chatbot.role.{role}==true"],
                          **({"prefs": ["node.labels.org.shia-chatbot.node"]} if replicas else {})},
        },
        "mode": {"replicated": {"replicas": replicas}} if replicas else {"global": True},
        "updateConfig": {"failureAction": "rollback", "order": "start-first"},
    })


def swarm_plan() -> dict[str, Res]:
    """A prod swarm's services: an app slot, PostgreSQL with its password as a file, nginx on the edge."""
    services = [
        swarm_service(f"{ENV}-app-blue", "app", "app", 2,
                      {**dict(e.split("=", 1) for e in app_envs() if isinstance(e, str)),
                       "DATABASE_URL_FILE": "/run/secrets/database-url"}, ("database-url",)),
        swarm_service(f"{ENV}-postgres", "postgres", "data", 1,
                      {"POSTGRES_USER": f"{ENV}_shia_chatbot", "POSTGRES_PASSWORD_FILE": "/run/secrets/postgres-password"},
                      ("postgres-password",)),
        swarm_service(f"{ENV}-nginx", "nginx", "edge", None, {}),
    ]
    return {r.name: r for r in services}
