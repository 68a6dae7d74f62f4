"""The committed stacks, evaluated under the SDK mocks: what exists, with which inputs."""

from __future__ import annotations

import base64
import io
import re
import tarfile

import pytest

import harness
from settings.defaults import ENVIRONMENTS, IMAGES

CONTAINER = "docker:index/container:Container"
DATA_SERVICES = ("postgres", "redis", "qdrant", "minio")


@pytest.fixture(scope="module", params=harness.STACKS)
def run(request) -> harness.Run:
    result = harness.run(request.param)
    assert result.error is None, result.error
    return result


def env_of(container: harness.Registered) -> dict[str, str]:
    pairs = (entry.split("=", 1) for entry in container.plain("envs") or [])
    return {k: v for k, v in pairs}


def label(container: harness.Registered, key: str) -> str | None:
    for item in container.plain("labels") or []:
        if item["label"] == f"org.shia-chatbot.{key}":
            return item["value"]
    return None


def test_every_service_runs(run):
    env = run.stack
    cfg = harness.stack_config(env)
    services = {label(c, "service") for c in run.containers().values()}
    # Monitoring's containers depend on the level: tests/test_monitoring_stacks.py.
    services -= {"prometheus", "alertmanager", "postgres-exporter", "redis-exporter", "node-exporter"}
    assert services == {"app", "worker", "flower", "postgres", "redis", "qdrant", "minio", "nginx", "backup"}
    replicas = cfg["slots"]["blue"]["replicas"]
    assert sorted(n for n in run.containers() if "-app-" in n) == [f"{env}-app-blue-{i}" for i in range(1, replicas + 1)]
    assert f"{env}-worker-blue" in run.containers() and f"{env}-flower" in run.containers()


def test_every_container_is_hardened(run):
    for name, c in run.containers().items():
        assert c.plain("restart") == "unless-stopped", name
        assert c.plain("memory") == ENVIRONMENTS[run.stack]["memoryMb"][label(c, "service")], name
        assert c.plain("logDriver") == "json-file" and c.plain("logOpts") == {"max-size": "10m", "max-file": "5"}, name
        # What the provider would otherwise get wrong (components/host/containers.py).
        assert c.plain("memorySwap") == c.plain("memory"), name
        assert c.plain("destroyGraceSeconds") == c.plain("stopTimeout") > 0, name
        assert "healthcheck" in c.request.replaceOnChanges and "logOpts" in c.request.ignoreChanges, name
        assert label(c, "log-opts") == "max-file=5,max-size=10m", name
        assert c.plain("securityOpts") == ["no-new-privileges:true"], name
        assert c.plain("healthcheck")["tests"], name
        assert not c.plain("privileged") and not c.plain("networkMode"), name
        assert label(c, "environment") == run.stack


def test_data_services_are_internal_with_pinned_images_and_volumes(run):
    env = run.stack
    for service in DATA_SERVICES:
        c = run.containers()[f"{env}-{service}"]
        if service == "postgres":
            # The pinned image plus pgBackRest, built on the host (test_backup_stack checks its base).
            assert c.plain("image").startswith("shia-chatbot-postgres:")
        else:
            assert c.plain("image") == IMAGES[service]
        assert not c.plain("ports"), f"{service} must not publish a host port"
        assert [n["name"] for n in c.plain("networksAdvanced")] == [f"{env}-backend"]
        assert c.plain("volumes")[0]["volumeName"] == f"{env}_{service}_data"
        shared = {f"{env}_pgbackrest_data", f"{env}_postgres_socket"} if service == "postgres" else set()
        assert {v["volumeName"] for v in c.plain("volumes")[1:]} == shared
        assert c.request.deleteBeforeReplace, "two containers must never share a data directory"
    backend = run.named(f"{env}-backend")
    assert backend.plain("internal") is True
    assert run.named(f"{env}-frontend").plain("internal") in (None, False)


def test_prod_volumes_are_protected_and_retained_and_others_are_not(run):
    for service in DATA_SERVICES:
        volume = run.named(f"{run.stack}_{service}_data")
        assert volume.protect is (run.stack == "prod")
        assert volume.retain_on_delete is (run.stack == "prod")


def test_only_nginx_publishes_and_on_the_expected_ports(run):
    published = {n: c.plain("ports") for n, c in run.containers().items() if c.plain("ports")}
    nginx = f"{run.stack}-nginx"
    expected = {80: 8080} if run.stack == "dev" else {80: 80, 443: 443}
    assert {p["internal"]: p["external"] for p in published.pop(nginx)} == expected
    if run.stack == "dev":
        # Flower on loopback only, behind basic auth.
        assert published == {"dev-flower": [{"internal": 5555, "external": 5555, "ip": "127.0.0.1"}]}
    else:
        assert published == {}


def test_names_carry_the_environment(run):
    env = run.stack
    for r in run.resources:
        physical = r.plain("name")
        # Image names are registry references, not host names (the backup image is built, the rest pulled).
        if r.type.startswith("docker:index/") and r.type not in ("docker:index/remoteImage:RemoteImage",
                                                                  "docker:index/image:Image"):
            assert re.match(rf"^{env}[-_]", physical), (r.type, physical)
        if r.custom or r.type.startswith("shia-chatbot:"):
            assert r.name.startswith(f"{env}-") or r.name.startswith(f"{env}_"), r.name
    assert run.outputs["collection"] == f"{env}_documents"
    assert run.outputs["database"] == f"{env}_shia_chatbot"
    assert run.outputs["buckets"] == {"documents": f"{env}-documents", "backups": f"{env}-backups"}


def test_every_docker_resource_uses_the_stack_provider(run):
    provider = run.named(f"{run.stack}-docker-host", "pulumi:providers:docker")
    host = provider.plain("host")
    assert host == harness.stack_config(run.stack).get("dockerHost", "unix:///var/run/docker.sock")
    for r in run.resources:
        if r.type.startswith("docker:index/"):
            assert f"::{run.stack}-docker-host::" in r.provider, (r.name, r.provider)


def test_app_replicas_run_uvicorn_with_the_configured_workers(run):
    cpus = ENVIRONMENTS[run.stack]["hostCpus"]
    for name, c in run.containers().items():
        if label(c, "service") != "app":
            continue
        assert c.plain("command") == ["uvicorn", "src.app.main:app", "--workers", str(2 * cpus + 1),
                                      "--host", "0.0.0.0", "--port", "8000"]
        assert c.plain("image") == harness.stack_config(run.stack)["slots"]["blue"]["image"]
        assert "http://localhost:8000/health" in c.plain("healthcheck")["tests"]
        aliases = {n["name"]: n["aliases"] for n in c.plain("networksAdvanced")}
        index = name.rsplit("-", 1)[1]
        assert aliases[f"{run.stack}-frontend"] == [f"app-blue-{index}", "app-blue"]


def test_app_environment_has_every_critical_variable(run):
    env = run.stack
    app = env_of(run.containers()[f"{env}-app-blue-1"])
    row = ENVIRONMENTS[env]["app"]
    assert app["ENVIRONMENT"] == env
    assert app["DEBUG"] == str(row["debug"]).lower()
    assert app["LOG_LEVEL"] == row["logLevel"]
    assert app["RATE_LIMIT_PER_MINUTE"] == str(row["rateLimitPerMinute"])
    assert app["RATE_LIMIT_PER_HOUR"] == str(row["rateLimitPerHour"])
    assert app["QDRANT_COLLECTION"] == f"{env}_documents"
    assert app["QDRANT_URL"] == f"http://{env}-qdrant:6333"
    assert re.fullmatch(rf"postgresql\+asyncpg://{env}_shia_chatbot_app:[A-Za-z0-9]{{32}}@{env}-postgres:5432/{env}_shia_chatbot",
                        app["DATABASE_URL"])
    assert re.fullmatch(rf"redis://app:[A-Za-z0-9]{{32}}@{env}-redis:6379/0", app["REDIS_URL"])
    for key in ("SECRET_KEY", "QDRANT_API_KEY", "MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY",
                "CORS_ORIGINS", "ALLOWED_HOSTS", "STRUCTLOG_DEV_MODE", "DB_POOL_SIZE", "DB_MAX_OVERFLOW"):
        assert app.get(key), key
    assert len(app["SECRET_KEY"]) == 64
    # The worker and Flower share the app's environment.
    assert env_of(run.containers()[f"{env}-worker-blue"]) == app


def test_worker_and_flower_commands(run):
    env = run.stack
    worker = run.containers()[f"{env}-worker-blue"]
    level = ENVIRONMENTS[env]["app"]["logLevel"].lower()
    assert worker.plain("command") == ["celery", "-A", "src.app.tasks", "worker", f"--loglevel={level}", "--concurrency=4"]
    flower = run.containers()[f"{env}-flower"]
    assert flower.plain("command") == ["celery", "-A", "src.app.tasks", "flower", "--port=5555"]
    assert re.fullmatch(rf"{env}-ops:[A-Za-z0-9]{{32}}", env_of(flower)["FLOWER_BASIC_AUTH"])


def test_redis_defines_its_acl_users_and_appends(run):
    redis = run.containers()[f"{run.stack}-redis"]
    command = " ".join(redis.plain("command"))
    assert "--appendonly yes" in command and "user default off" in command
    # Through the image's entrypoint, which drops root for the redis user, the
    # users' config on its stdin; maxmemory from the container's own limit, so
    # a memory change is an update in place.
    # The shell execs the entrypoint itself (no pipeline), so Docker's SIGTERM reaches Redis.
    assert command.startswith("sh -c limit_mb=") and "&& exec docker-entrypoint.sh redis-server - " in command
    assert "| exec" not in command and "noeviction <<EOF\nuser default off" in command
    assert '--maxmemory "$((limit_mb * 3 / 4))mb" --maxmemory-policy noeviction' in command
    # The passwords are in the (secret) environment, not on the command line;
    # the app's and the exporter's only as digests.
    assert not re.search(r"[A-Za-z0-9]{32}", command)
    env = dict(e.split("=", 1) for e in redis.plain("envs"))
    assert re.fullmatch(r"[0-9a-f]{64}", env["REDIS_APP_PASSWORD_SHA256"])
    assert re.fullmatch(r"[0-9a-f]{64}", env["REDIS_EXPORTER_PASSWORD_SHA256"])
    app = dict(e.split("=", 1) for e in run.containers()[f"{run.stack}-worker-blue"].plain("envs"))
    assert app["REDIS_URL"].split(":")[2].split("@")[0] not in env.values()


def test_minio_buckets_are_made_on_the_host(run):
    env = run.stack
    step = run.named(f"{env}-minio-buckets")
    assert step.type == ("command:local:Command" if env == "dev" else "command:remote:Command")
    assert f"local/{env}-documents local/{env}-backups" in step.plain("create")
    # Credentials reach mc through its environment, the users' secrets through
    # stdin, never as arguments.
    assert 'MC_HOST_local="http://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@${MINIO_ADDRESS:-127.0.0.1:9000}"' in \
        step.plain("create")
    assert "mc alias set" not in step.plain("create") and "docker exec -i" in step.plain("create")
    assert "USERS='app:app-documents backup:backup-job'" in step.plain("create")


def test_router_serves_the_active_slot(run):
    env = run.stack
    step = run.named(f"{env}-router-config")
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(step.plain("stdin")))) as tar:
        conf = tar.extractfile("default.conf").read().decode()
        assert "fs.readFileSync" in tar.extractfile("router.js").read().decode()
    assert "proxy_pass http://app-$app_slot:8000;" in conf
    per_minute = ENVIRONMENTS[env]["app"]["rateLimitPerMinute"]
    assert f"rate={per_minute}r/m" in conf
    assert ("listen 443 ssl" in conf) is (env != "dev")
    assert ("return 301 https://$host$request_uri;" in conf) is (env != "dev")
    assert f"config={run.outputs['routerConfigSha256']} " in conf
    assert run.named(f"{env}-router-switch").plain("stdin") == "blue\n"
    nginx = run.containers()[f"{env}-nginx"]
    assert nginx.plain("command")[2].startswith("load_module modules/ngx_http_js_module.so; daemon off;")


def test_outputs(run):
    env = run.stack
    cfg = harness.stack_config(env)
    assert run.outputs["activeSlot"] == "blue"
    assert run.outputs["url"] == {"dev": "http://localhost:8080"}.get(env, f"https://{cfg.get('domain')}")
    assert run.outputs["containers"]["postgres"] == f"{env}-postgres"
    assert run.outputs["slots"]["blue"]["image"] == cfg["slots"]["blue"]["image"]


def test_every_container_has_a_health_step_its_dependents_wait_for(run):
    """The provider waits for health at the first create only: the step re-checks it
    whenever the container is new, and fails the `up` until it is healthy."""
    for name, container in run.containers().items():
        step = run.named(f"{name}-healthy")
        assert f"NAME={name}" in step.plain("create") and "State.Health.Status" in step.plain("create")
        assert step.plain("triggers") == [container.id], name
    for replica in (n for n in run.containers() if "-app-" in n):
        smoke = run.named(f"{run.stack}-app-blue-smoke")
        assert any(d.endswith(f"::{replica}-healthy") for d in smoke.dependencies), replica
