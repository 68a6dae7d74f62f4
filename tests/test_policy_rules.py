"""Every rule of the policy pack: it passes the compliant prod plan, and fails
that plan with one property changed, with the message an operator would read.

The policies run in-process through the SDK's own deserializer and proxy
(policy_fixtures.evaluate); tests/test_policy_gate.py runs the same pack as
the engine does, over the real program.
"""

from __future__ import annotations

from typing import Callable

import pytest

from policy_fixtures import (
    ENV, UNKNOWN, Res, compliant_plan, evaluate, generated, router_bundle, router_text, secret,
)
from shia_policies.catalog import RULES, policies_for
from shia_policies.swarm import RULES as SWARM_RULES
from shia_policies.spec import ADVISORY, DISABLED, MANDATORY
from shia_policies.stack import StackContext

APP, WORKER, FLOWER = f"{ENV}-app-blue-1", f"{ENV}-worker-blue", f"{ENV}-flower"
REDIS, QDRANT, MINIO, POSTGRES, NGINX = (f"{ENV}-{s}" for s in ("redis", "qdrant", "minio", "postgres", "nginx"))
ROUTER, SWITCH, BACKUP, PROVIDER = (f"{ENV}-router-config", f"{ENV}-router-switch", f"{ENV}-backup",
                                    f"{ENV}-docker-host")


@pytest.mark.parametrize("rule", [r.name for r in RULES])
def test_the_compliant_plan_passes(rule):
    outcome = evaluate(rule, compliant_plan())
    assert outcome.violations == [] and not outcome.deferred


Change = Callable[[dict[str, Res]], None]


def at(name: str, change: Callable[[Res], Res]) -> Change:
    def apply(plan: dict[str, Res]) -> None:
        plan[name] = change(plan[name])
    return apply


def router(old: str, new: str) -> Change:
    """The router config with `old` replaced by `new` inside its bundle."""
    def change(r: Res) -> Res:
        text = router_text(r.props["stdin"])
        assert old in text, old
        return r.but(stdin=router_bundle(text.replace(old, new)))
    return at(ROUTER, change)


def switch_to(slot: str) -> Change:
    return at(SWITCH, lambda r: r.but(stdin=f"{slot}\n"))


def _env_value(plan: dict[str, Res], name: str, key: str) -> str:
    for entry in plan[name].props["envs"]:
        text = entry["value"] if isinstance(entry, dict) else entry
        if text.startswith(f"{key}="):
            return text.partition("=")[2]
    raise KeyError(key)


def superuser_password_in(name: str, key: str) -> Change:
    """`key` in container `name` set to the superuser's own password."""
    def apply(plan: dict[str, Res]) -> None:
        plan[name] = plan[name].env(key, _env_value(plan, POSTGRES, "POSTGRES_PASSWORD"))
    return apply


def minio_root_user_in(name: str) -> Change:
    def apply(plan: dict[str, Res]) -> None:
        plan[name] = plan[name].env("MINIO_ACCESS_KEY", _env_value(plan, MINIO, "MINIO_ROOT_USER"))
    return apply


def drop(name: str) -> Change:
    return lambda plan: plan.pop(name)


FAILURES = [
    # 1
    ("debug-disabled", at(APP, lambda r: r.env("DEBUG", "true")), "DEBUG=true in prod"),
    ("debug-disabled", at(FLOWER, lambda r: r.env("DEBUG", None)), "DEBUG is not set"),
    # 2
    ("log-level-strict", at(APP, lambda r: r.env("LOG_LEVEL", "INFO")), "LOG_LEVEL=INFO"),
    ("log-level-strict", at(WORKER, lambda r: r.but(command=["celery", "worker", "--loglevel=info"])),
     "the command sets log level 'info'"),
    # 3
    ("images-pinned", at(REDIS, lambda r: r.but(image="redis:latest")), "'redis:latest' is not pinned"),
    ("images-pinned", at(f"{ENV}-app-blue-image", lambda r: r.but(name="ghcr.io/shia-chatbot/app")), "not pinned"),
    ("images-pinned", at(APP, lambda r: r.but(image="docker.io/someone/app:1.0.0")), "not from an allowed registry"),
    # 4
    ("environment-prefixed-names", at(APP, lambda r: r.but(name="app-blue-1")), "'app-blue-1' does not start"),
    ("environment-prefixed-names", at(APP, lambda r: r.env("QDRANT_COLLECTION", "documents")),
     "QDRANT_COLLECTION 'documents'"),
    ("environment-prefixed-names", at(f"{ENV}_postgres_data", lambda r: r.but(name="postgres_data")),
     "volume 'postgres_data'"),
    ("environment-prefixed-names", at(f"{ENV}-backup-offsite", lambda r: r.but(bucket="backups-of-shia")),
     "bucket 'backups-of-shia'"),
    ("environment-prefixed-names", at(f"{ENV}-minio-buckets", lambda r: r.but(
        create="docker exec prod-minio sh -c 'mc mb --ignore-existing local/documents'")), "bucket 'documents'"),
    ("environment-matches-stack", at(WORKER, lambda r: r.env("ENVIRONMENT", "stage")), "ENVIRONMENT=stage"),
    ("environment-matches-stack", at(f"{ENV}_postgres_data", lambda r: r.but(
        labels=[{"label": "org.shia-chatbot.environment", "value": "dev"}])), "environment=dev on a prod stack"),
    # 5
    ("published-ports", at(REDIS, lambda r: r.but(ports=[{"internal": 6379.0, "external": 6379.0}])),
     "redis publishes 0.0.0.0:6379->6379"),
    ("published-ports", at(FLOWER, lambda r: r.but(ports=[{"internal": 5555.0, "external": 5555.0,
                                                            "ip": "127.0.0.1"}])), "only nginx publishes"),
    ("published-ports", at(NGINX, lambda r: r.but(ports=[{"internal": 80.0, "external": 8080.0}])),
     "only host ports 80 and 443"),
    ("published-ports", at(POSTGRES, lambda r: r.but(publishAllPorts=True)), "every exposed port"),
    # 6
    ("flower-behind-auth", at(FLOWER, lambda r: r.env("FLOWER_BASIC_AUTH", None).but(
        ports=[{"internal": 5555.0, "external": 5555.0}])), "without authentication"),
    ("flower-behind-auth", at(FLOWER, lambda r: r.env("FLOWER_BASIC_AUTH", "ops:").but(
        ports=[{"internal": 5555.0, "external": 5555.0}])), "both parts set"),
    # 7
    ("healthcheck-and-restart", at(APP, lambda r: r.but(restart="no")), "restart=no"),
    ("healthcheck-and-restart", at(QDRANT, lambda r: r.but(healthcheck=None)), "no healthcheck"),
    # 8
    ("memory-and-log-limits", at(APP, lambda r: r.but(memory=None)), "no memory limit"),
    ("memory-and-log-limits", at(APP, lambda r: r.but(logOpts={"max-size": "10m"})), "without max-file"),
    ("memory-and-log-limits", at(APP, lambda r: r.but(logDriver=None)), "<daemon default>"),
    # 9
    ("container-hardening", at(APP, lambda r: r.but(privileged=True)), "privileged=true"),
    ("container-hardening", at(APP, lambda r: r.but(pidMode="host")), "pidMode=host"),
    ("container-hardening", at(APP, lambda r: r.but(capabilities={"adds": ["SYS_ADMIN"]})), "SYS_ADMIN"),
    ("container-hardening", at(WORKER, lambda r: r.but(volumes=[
        {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock"}])), "'/var/run/docker.sock'"),
    ("container-hardening", at(NGINX, lambda r: r.but(volumes=[{"hostPath": "/var", "containerPath": "/h"}])),
     "host path '/var'"),
    ("container-hardening", at(APP, lambda r: r.but(securityOpts=None)), "no-new-privileges"),
    ("capabilities-dropped", at(APP, lambda r: r.but(capabilities=None)), "lacks ALL"),
    ("capabilities-dropped", at(REDIS, lambda r: r.but(capabilities={"drops": ["chown"]})), "lacks ALL"),
    ("capabilities-dropped", at(NGINX, lambda r: r.but(capabilities={"drops": ["ALL"], "adds": ["CAP_NET_RAW"]})),
     "NET_RAW added back to nginx"),
    ("capabilities-dropped", at(APP, lambda r: r.but(capabilities={"drops": ["ALL"], "adds": ["SETUID"]})),
     "grants it none"),
    ("read-only-root", at(APP, lambda r: r.but(readOnly=None)), "app can rewrite"),
    ("read-only-root", at(MINIO, lambda r: r.but(readOnly=False)), "minio can rewrite"),
    # 10
    ("service-authentication", at(REDIS, lambda r: r.but(command=["redis-server", "--appendonly", "yes"])),
     "without --requirepass"),
    ("service-authentication", at(REDIS, lambda r: r.but(envs=[])), "REDIS_PASSWORD is not set"),
    ("service-authentication", at(REDIS, lambda r: r.but(command=[
        "sh", "-c", "printf 'user default off\\nuser app on #%s ~* +@all\\n' \"$REDIS_APP_PASSWORD_SHA256\" | "
                    "exec redis-server -"])), "REDIS_APP_PASSWORD_SHA256 is not set"),
    ("service-authentication", at(QDRANT, lambda r: r.but(envs=["QDRANT__TELEMETRY_DISABLED=true"])),
     "QDRANT__SERVICE__API_KEY is not set"),
    ("service-authentication", at(MINIO, lambda r: r.env("MINIO_ROOT_USER", "minioadmin")),
     "root user is a well-known default"),
    ("service-authentication", at(MINIO, lambda r: r.but(envs=["MINIO_BROWSER=off"])), "falls back to minioadmin"),
    ("service-authentication", at(POSTGRES, lambda r: r.env("POSTGRES_HOST_AUTH_METHOD", "trust")), "trust"),
    # 11
    ("data-volumes-protected", at(f"{ENV}_postgres_data", lambda r: Res(r.type, r.name, r.props, protect=False)),
     "is not protected"),
    ("data-volumes-protected", at(POSTGRES, lambda r: r.but(volumes=None)), "container layer"),
    # 12
    ("cors-and-allowed-hosts", at(APP, lambda r: r.env("CORS_ORIGINS", "*")), "CORS_ORIGINS=*"),
    ("cors-and-allowed-hosts", at(APP, lambda r: r.env("ALLOWED_HOSTS", None)), "ALLOWED_HOSTS is empty"),
    # 13
    ("rate-limit-ceiling", at(APP, lambda r: r.env("RATE_LIMIT_PER_MINUTE", "600")), "RATE_LIMIT_PER_MINUTE=600"),
    ("rate-limit-ceiling", at(APP, lambda r: r.env("RATE_LIMIT_PER_HOUR", None)), "RATE_LIMIT_PER_HOUR is not set"),
    ("rate-limit-ceiling", router("rate=60r/m", "rate=10r/s"), "allows 600 requests per minute"),
    # 14
    ("backup-policy", at(BACKUP, lambda r: r.env("BACKUP_CRONTAB", "0 2 * * * /opt/shia-backup/bin/backup all\n")),
     "runs 1 times a day; prod needs hourly+daily"),
    # Only backup lines count: a job every minute that backs nothing up is not hourly backups.
    ("backup-policy", at(BACKUP, lambda r: r.env("BACKUP_CRONTAB", "0 2 * * * /opt/shia-backup/bin/backup all\n"
                                                 "* * * * * sh /opt/shia-backup/lib/postgres.sh metrics\n")),
     "runs 1 times a day; prod needs hourly+daily"),
    ("backup-policy", at(BACKUP, lambda r: r.env("RETENTION_DAYS", "7")), "RETENTION_DAYS=7"),
    ("backup-policy", drop(BACKUP), "no backup container"),
    ("backup-policy", drop(f"{ENV}-backup-offsite-versioning"), "is not versioned"),
    ("backup-policy", drop(f"{ENV}-backup-offsite-encryption"), "no server-side encryption"),
    ("backup-policy", at(f"{ENV}-backup-offsite-public-access", lambda r: r.but(blockPublicPolicy=False)),
     "no public access block"),
    # The issue-12 case: off-site copies expiring whether or not a newer one exists.
    ("backup-policy", at(f"{ENV}-backup-offsite-lifecycle", lambda r: r.but(rules=[
        {"id": "x", "status": "Enabled", "expiration": {"days": 365.0},
         "noncurrentVersionExpiration": {"noncurrentDays": 120.0}}])), "expires current backups after 365 days"),
    ("backup-policy", at(f"{ENV}-backup-offsite-lifecycle", lambda r: r.but(rules=[
        {"id": "x", "status": "Enabled", "noncurrentVersionExpiration": {"noncurrentDays": 7.0}}])),
     "removes deleted or overwritten backups after 7 days"),
    ("backup-policy", drop(f"{ENV}-backup-offsite-lifecycle"), "no lifecycle expiry"),
    # 15
    ("router-tls", router("return 301 https://$host$request_uri;", "proxy_pass http://app-$app_slot:8000;"),
     "port 80 does not redirect"),
    ("router-tls", router("listen 443 ssl http2;", "listen 443;"), "serves no HTTPS"),
    ("router-tls", router("    ssl_certificate_key", "    # ssl_certificate_key"), "no ssl_certificate"),
    ("router-tls", at(NGINX, lambda r: r.but(ports=[{"internal": 80.0, "external": 80.0}])),
     "does not publish port 443"),
    ("router-tls", at(NGINX, lambda r: r.but(volumes=r.props["volumes"][:1])), "on no host directory mounted"),
    # 16
    ("docker-host-transport", at(PROVIDER, lambda r: r.but(host="tcp://10.0.0.5:2375")), "plain TCP"),
    ("docker-host-transport", at(PROVIDER, lambda r: r.but(host=None)), "has no host"),
    # 17
    ("blue-green-slots", router("proxy_pass http://app-$app_slot:8000;", f"proxy_pass http://{ENV}-app-blue-1:8000;"),
     "it must proxy to the active slot's name only"),
    ("blue-green-slots", at(f"{ENV}-app-blue-2", lambda r: r.but(labels=[
        {"label": "org.shia-chatbot.service", "value": "app"},
        {"label": "org.shia-chatbot.slot", "value": "green"}])),
     f"{ENV}-app-blue-2 answers to app-blue but is on slot 'green'"),
    ("blue-green-slots", switch_to("purple"), "it must name one slot"),
    ("blue-green-slots", switch_to("green"), "'green' has no app containers"),
    ("blue-green-slots", drop(f"{ENV}-app-blue-2"), "has 1 replica(s); prod needs at least 2"),
    ("blue-green-slots", at(WORKER, lambda r: r.but(image="ghcr.io/shia-chatbot/app:0.9.0")),
     "worker runs ghcr.io/shia-chatbot/app:0.9.0"),
    ("blue-green-slots", at(FLOWER, lambda r: r.but(labels=[
        {"label": "org.shia-chatbot.service", "value": "flower"},
        {"label": "org.shia-chatbot.slot", "value": "green"}])), "flower is on slot 'green'"),
    ("blue-green-slots", drop(ROUTER), "0 router config steps and 1 switch steps"),
    ("blue-green-slots", drop(SWITCH), "1 router config steps and 0 switch steps"),
    # 18
    ("secret-env-literals", at(APP, lambda r: r.env("OPENAI_API_KEY", "changeme")), "placeholder"),
    # 19
    ("root-credentials-owned", at(APP, lambda r: r.env("DATABASE_URL", f"postgresql://{ENV}_shia_chatbot:"
                                                      f"{generated()}@{ENV}-postgres:5432/db")),
     f"DATABASE_URL logs in to postgres as its root user '{ENV}_shia_chatbot'"),
    ("root-credentials-owned", superuser_password_in(WORKER, "DATABASE_PASSWORD"),
     "DATABASE_PASSWORD holds the value of postgres's POSTGRES_PASSWORD"),
    ("root-credentials-owned", at(BACKUP, lambda r: r.env("MINIO_ROOT_PASSWORD", generated(40))),
     "carries MINIO_ROOT_PASSWORD, minio's root credential"),
    ("root-credentials-owned", minio_root_user_in(APP), "MINIO_ACCESS_KEY logs in to minio as its root user"),
]


@pytest.mark.parametrize("rule, change, expected", FAILURES, ids=[f"{r}:{e[:40]}" for r, _, e in FAILURES])
def test_one_changed_property_fails_the_rule(rule, change, expected):
    plan = compliant_plan()
    change(plan)
    outcome = evaluate(rule, plan)
    assert any(expected in v for v in outcome.violations), outcome.violations


def test_every_rule_has_a_failing_case():
    # The swarm rules judge Services, which a one-host plan has none of: tests/test_swarm_policies.py.
    assert {rule for rule, _, _ in FAILURES} | {r.name for r in SWARM_RULES} == {r.name for r in RULES}


# --- What only the stack config or the environment can tell -------------------------------------


def test_a_secret_env_value_written_in_plain_stack_config_is_refused():
    literal = generated()
    plan = compliant_plan()
    plan[APP] = plan[APP].env("SMTP_PASSWORD", literal)
    refused = evaluate("secret-env-literals", plan, settings={"smtp": {"host": "mail", "user": literal}})
    assert refused.violations == ["SMTP_PASSWORD holds the value of stack config shia-chatbot:smtp.user, "
                                  "stored in plaintext: set it with `pulumi config set --secret` under a secret key."]
    # The same value under a key named like a secret is assumed set with --secret.
    assert evaluate("secret-env-literals", plan, settings={"smtpPassword": literal}).violations == []


def test_a_url_password_written_in_plain_stack_config_is_refused():
    literal = generated()
    plan = compliant_plan()
    plan[APP] = plan[APP].env("DATABASE_URL", f"postgresql://u:{literal}@db/x")
    assert evaluate("secret-env-literals", plan, settings={"app": {"note": literal}}).violations


def test_the_stack_config_environment_must_match_the_stack_name():
    outcome = evaluate("environment-matches-stack", compliant_plan(), stack="prod", settings={"environment": "stage"},
                       only="shia-chatbot-prod")
    assert outcome.violations == ["stack 'prod' is configured as 'stage': name it 'stage' or 'stage-...'."]


def test_flower_published_with_auth_passes_in_dev():
    plan = compliant_plan()
    plan[FLOWER] = plan[FLOWER].but(ports=[{"internal": 5555.0, "external": 5555.0, "ip": "127.0.0.1"}])
    assert evaluate("flower-behind-auth", plan, stack="dev").violations == []
    assert evaluate("published-ports", plan, stack="dev").violations == []


def test_only_volumes_named_as_data_must_be_protected():
    plan = compliant_plan()
    for volume, service in ((f"{ENV}_prometheus_tsdb", "prometheus"), (f"{ENV}_backup_data", "backup")):
        plan[volume] = Res("docker:index/volume:Volume", volume, {
            "name": volume, "labels": [{"label": "org.shia-chatbot.service", "value": service}]})
    outcome = evaluate("data-volumes-protected", plan)
    assert [v.split(" is not")[0] for v in outcome.violations] == [f"data volume '{ENV}_backup_data'"]


def test_tcp_docker_host_with_tls_client_certificates_passes():
    plan = compliant_plan()
    plan[PROVIDER] = plan[PROVIDER].but(host="tcp://10.0.0.5:2376", certMaterial="cert", keyMaterial="key")
    assert evaluate("docker-host-transport", plan).violations == []


def test_a_one_shot_container_needs_no_restart_policy():
    plan = compliant_plan()
    plan[APP] = plan[APP].but(rm=True, restart=None, healthcheck=None)
    assert evaluate("healthcheck-and-restart", plan).violations == []


def test_config_thresholds_override_the_environment_defaults():
    plan = compliant_plan()
    assert evaluate("rate-limit-ceiling", plan, config={"maxPerMinute": 30.0}).violations == [
        "RATE_LIMIT_PER_MINUTE=60; the ceiling in prod is 30.", "RATE_LIMIT_PER_MINUTE=60; the ceiling in prod is 30.",
        "the router allows 60 requests per minute per client; the ceiling is 30."]
    assert evaluate("backup-policy", plan, config={"minRetentionDays": 45}).violations[0] == (
        "RETENTION_DAYS=30; prod keeps backups at least 45 days.")


@pytest.mark.parametrize("env, expected", [("dev", DISABLED), ("stage", MANDATORY), ("prod", MANDATORY)])
def test_levels_come_from_the_stack_environment(env, expected):
    levels = {p.name: p.enforcement_level for p in policies_for(StackContext.for_stack(f"{env}-eu"))}
    assert levels["debug-disabled"] == expected
    assert levels["log-level-strict"] == {"dev": DISABLED, "stage": ADVISORY, "prod": MANDATORY}[env]


def test_an_unknown_environment_is_judged_as_prod():
    assert StackContext.for_stack("feature-x").environment == "prod"
    assert StackContext.from_environ({}).environment == "prod"


# --- First preview: generated values unknown ------------------------------------------------------


def unknown_secrets(resource: Res) -> Res:
    """The resource as a first preview registers it: every secret entry unknown."""
    return resource.but(envs=[secret(UNKNOWN) if isinstance(e, dict) else e for e in resource.props["envs"]])


def first_preview(name: str, change: Callable[[Res], Res] = lambda r: r) -> dict[str, Res]:
    plan = compliant_plan()
    plan[name] = change(unknown_secrets(plan[name]))
    return plan


def test_first_preview_debug_true_next_to_unknown_secrets_is_still_a_violation():
    outcome = evaluate("debug-disabled", first_preview(APP, lambda r: r.env("DEBUG", "true")), only=APP)
    assert outcome.violations and "DEBUG=true" in outcome.violations[0]
    assert not outcome.deferred


def test_first_preview_known_violations_of_other_rules_are_still_reported():
    plan = first_preview(APP, lambda r: r.env("CORS_ORIGINS", "*").env("LOG_LEVEL", "DEBUG"))
    assert evaluate("cors-and-allowed-hosts", plan, only=APP).violations == [
        "CORS_ORIGINS=*: a wildcard lets any site call the API with the user's browser."]
    assert evaluate("log-level-strict", plan, only=APP).violations == [
        "LOG_LEVEL=DEBUG; prod allows WARNING or stricter."]
    plan = first_preview(REDIS, lambda r: r.but(command=["redis-server"]))
    outcome = evaluate("service-authentication", plan, only=REDIS)
    assert outcome.violations and not outcome.deferred


def test_first_preview_a_fact_that_is_itself_unknown_defers_to_the_sdk_advisory():
    redis = evaluate("service-authentication", first_preview(REDIS), only=REDIS)
    assert redis.deferred and redis.violations == []
    missing = evaluate("debug-disabled", first_preview(APP, lambda r: r.env("DEBUG", None)), only=APP)
    assert missing.deferred and missing.violations == []


def test_first_preview_compliant_plan_raises_no_violation():
    plan = compliant_plan()
    for name, resource in plan.items():
        if resource.type == "docker:index/container:Container":
            plan[name] = unknown_secrets(resource)
    for rule in RULES:
        assert evaluate(rule.name, plan).violations == [], rule.name


def test_the_hardening_allow_lists_are_what_the_program_sets():
    from components.host import hardening
    from shia_policies.hardening import ADDABLE_CAPABILITIES, WRITABLE_ROOT
    granted = {service: set(caps) for service, (caps, _) in ADDABLE_CAPABILITIES.items()}
    added = {service: set(row.capabilities) for service, row in hardening.SERVICES.items() if row.capabilities}
    assert granted == added
    assert set(WRITABLE_ROOT) == set(hardening.writable_roots())
