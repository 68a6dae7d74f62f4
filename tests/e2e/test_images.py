"""Smoke tests of the locally built images (tests/e2e/images), on a real Docker engine.

Each stand-in runs the way the program runs its official image — the same
environment variables, command, volumes, networks and healthcheck test
(components/data, components/router, components/app, components/monitoring) —
and must become healthy and answer its interface. The program's own step
scripts (migrate.sh, smoke-check.sh, router-apply.sh, postgres-set-password.sh,
the backup job's lib/*.sh) run unchanged against them.

Skipped when no Docker daemon answers; with CI=true that is a failure instead.
The images are built (or found cached) by tests/e2e/images/build.py first.
Passwords are made per run; every container, network and volume carries the
run's label and is removed at the end.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from docker_lab import RUN_LABEL, Health, Lab, docker, env_file, host_env, password

ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = Path(__file__).resolve().parent / "images"
# tests/e2e/images/build.py (image names and hashes), under a name no installed package has.
_spec = importlib.util.spec_from_file_location("e2e_images_build", IMAGES_DIR / "build.py")
build = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

PLAN = build.plan_images()
APP_1_0 = f"{build.APP_REPOSITORY}:1.0.0"
APP_1_1 = f"{build.APP_REPOSITORY}:1.1.0"


@pytest.fixture(scope="module")
def lab():
    lab = Lab()
    yield lab
    lab.cleanup()
    assert lab.leftovers() == []


@pytest.fixture(scope="module")
def creds():
    return {"postgres": password(), "redis": password(), "qdrant": password(), "minio_user": "root" + password(8),
            "minio_password": password(), "flower": password()}


@pytest.fixture(scope="module")
def backend(lab):
    # As components/host/networks.py: the data services' network has no route out.
    return lab.network("backend", internal=True)


@pytest.fixture(scope="module")
def frontend(lab):
    return lab.network("frontend")


# ---- the data services, as components/data/*.py run them ------------------------------

def postgres_env(creds) -> dict:
    return {"POSTGRES_USER": "dev_shia_chatbot", "POSTGRES_DB": "dev_shia_chatbot", "POSTGRES_PASSWORD": creds["postgres"]}


POSTGRES_COMMAND = ["postgres", "-c", "max_connections=150", "-c", "shared_buffers=128MB",
                    "-c", "checkpoint_completion_target=0.9", "-c", "random_page_cost=1.1"]
POSTGRES_HEALTH = Health(['pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB"'], shell=True)


def start_postgres(lab, backend, creds, volume) -> str:
    name = lab.create("postgres", PLAN["postgres"], command=POSTGRES_COMMAND, env=postgres_env(creds),
                      networks=[(backend, ["postgres"])], volumes=[f"{volume}:/var/lib/postgresql/data"],
                      health=POSTGRES_HEALTH)
    lab.wait_healthy(name)
    return name


def start_redis(lab, backend, creds, volume) -> str:
    name = lab.create(
        "redis", PLAN["redis"], env={"REDIS_PASSWORD": creds["redis"], "REDISCLI_AUTH": creds["redis"]},
        command=["sh", "-c", 'exec docker-entrypoint.sh redis-server --appendonly yes --requirepass "$REDIS_PASSWORD" '
                             "--maxmemory 288mb --maxmemory-policy noeviction"],
        networks=[(backend, ["redis"])], volumes=[f"{volume}:/data"],
        health=Health(["redis-cli ping | grep -q PONG"], shell=True))
    lab.wait_healthy(name)
    return name


def start_qdrant(lab, backend, creds, volume, what="qdrant", extra_env=None) -> str:
    name = lab.create(what, PLAN["qdrant"], env={"QDRANT__SERVICE__API_KEY": creds["qdrant"],
                                                 "QDRANT__TELEMETRY_DISABLED": "true", **(extra_env or {})},
                      networks=[(backend, [what])], volumes=[f"{volume}:/qdrant/storage"],
                      health=Health(["timeout 1 bash -c '</dev/tcp/127.0.0.1/6333'"], shell=True))
    lab.wait_healthy(name)
    return name


def start_minio(lab, backend, creds, volume) -> str:
    name = lab.create("minio", PLAN["minio"], command=["server", "/data"],
                      env={"MINIO_ROOT_USER": creds["minio_user"], "MINIO_ROOT_PASSWORD": creds["minio_password"],
                           "MINIO_BROWSER": "off"},
                      networks=[(backend, ["minio"])], volumes=[f"{volume}:/data"],
                      health=Health(["mc", "ready", "local"]))
    lab.wait_healthy(name)
    # The bucket step of components/data/minio.py, word for word.
    lab.sh(name, 'export MC_HOST_local="http://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@127.0.0.1:9000"'
                 " && mc mb --ignore-existing local/dev-documents local/dev-backups"
                 " && mc version enable local/dev-backups")
    return name


@pytest.fixture(scope="module")
def data(lab, backend, creds):
    """The four data services, healthy, with their named volumes."""
    volumes = {s: lab.volume(f"{s}-data") for s in ("postgres", "redis", "qdrant", "minio")}
    names = {
        "postgres": start_postgres(lab, backend, creds, volumes["postgres"]),
        "redis": start_redis(lab, backend, creds, volumes["redis"]),
        "qdrant": start_qdrant(lab, backend, creds, volumes["qdrant"]),
        "minio": start_minio(lab, backend, creds, volumes["minio"]),
    }
    return {"names": names, "volumes": volumes}


@pytest.fixture(scope="module")
def client(lab, backend, data):
    """A long-running container on the backend network to make requests from (curl, sh, python)."""
    name = lab.create("client", APP_1_1, command=["sleep", "infinity"], networks=[(backend, ["client"])])
    return name


def curl(lab, client, *args: str) -> tuple[int, str]:
    """HTTP status and body of a request made from the client container."""
    result = lab.exec(client, "curl", "-s", "-o", "/tmp/body", "-w", "%{http_code}", *args, check=False)
    body = lab.exec(client, "cat", "/tmp/body", check=False).stdout
    return int(result.stdout or 0), body


# ---- the tests -----------------------------------------------------------------------------

def test_every_image_the_plan_names_is_built_with_its_input_hash():
    all_images = build.images()
    build.compute_hashes(all_images)
    tags = {i.tag for i in all_images}
    assert set(PLAN.values()) <= tags
    assert {APP_1_0, APP_1_1} <= tags
    for image in all_images:
        assert build.current_hash(image.tag) == image.hash, image.tag
    # Every image is built FROM its declared base (an ARG the build passes counts as
    # that base's tag), so none needs a registry.
    by_name = {i.name: i for i in all_images}
    for image in all_images:
        dockerfile = IMAGES_DIR / image.folder / "Dockerfile"
        if image.base is None:
            continue
        text = dockerfile.read_text()
        froms = [image.args.get(f[2:-1], f) if f.startswith("${") else f
                 for f in re.findall(r"^FROM\s+(\S+)", text, re.M)]
        assert froms == [by_name[image.base].tag], f"{dockerfile}: FROM {froms}"
        assert text.startswith("# "), f"{dockerfile} must say what it stands in for"


def test_postgres_takes_its_password_runs_as_uid_70_and_keeps_its_data(lab, backend, creds, data):
    pg = data["names"]["postgres"]
    env = postgres_env(creds)
    query = ["psql", "-h", "postgres", "-U", env["POSTGRES_USER"], "-d", env["POSTGRES_DB"], "-Atc"]
    ok = lab.exec(pg, *query, "SELECT current_user", env={"PGPASSWORD": creds["postgres"]})
    assert ok.stdout.strip() == env["POSTGRES_USER"]
    wrong = lab.exec(pg, *query, "SELECT 1", env={"PGPASSWORD": password()}, check=False)
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    assert lab.exec(pg, "psql", "-U", env["POSTGRES_USER"], "-Atc", "SHOW max_connections").stdout.strip() == "150"
    assert lab.sh(pg, "stat -c %u /proc/1 && stat -c %u:%a /var/lib/postgresql/data").stdout.split() == ["70", "70:700"]

    # The program's rotation step, as components/data/postgres.py runs it.
    rotated = password()
    script = (ROOT / "components" / "data" / "scripts" / "postgres-set-password.sh").read_text()
    step = lab.exec(pg, "sh", "-c", script, input=rotated + "\n")
    assert "password of role" in step.stdout
    assert lab.exec(pg, *query, "SELECT 1", env={"PGPASSWORD": rotated}).stdout.strip() == "1"
    lab.exec(pg, "psql", "-U", env["POSTGRES_USER"], "-c", "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")

    # A replaced container (same volume) keeps the data and does not initialise again.
    lab.remove(pg)
    pg = start_postgres(lab, backend, creds, data["volumes"]["postgres"])
    assert "Skipping initialization" in docker("logs", pg).stdout
    assert lab.exec(pg, *query, "SELECT n FROM kept", env={"PGPASSWORD": rotated}).stdout.strip() == "7"
    # Put the fixture's password back for the tests after this one.
    lab.exec(pg, "sh", "-c", script, input=creds["postgres"] + "\n")


def test_redis_requires_its_password_and_runs_as_the_redis_user(lab, data, creds):
    redis = data["names"]["redis"]
    assert "NOAUTH" in lab.exec(redis, "redis-cli", "-h", "redis", "ping", env={"REDISCLI_AUTH": ""}).stdout + \
        lab.exec(redis, "sh", "-c", "unset REDISCLI_AUTH; redis-cli -h redis ping").stdout
    assert lab.exec(redis, "redis-cli", "-h", "redis", "ping").stdout.strip() == "PONG"
    assert lab.exec(redis, "redis-cli", "CONFIG", "GET", "maxmemory-policy").stdout.split()[-1] == "noeviction"
    owner = lab.sh(redis, "stat -c %u /proc/1; ls /data")
    assert owner.stdout.split()[0] == "999" and "appendonlydir" in owner.stdout


def test_qdrant_requires_its_api_key_and_keeps_collections_on_its_volume(lab, backend, creds, data, client):
    url = "http://qdrant:6333"
    key = ["-H", f"api-key: {creds['qdrant']}"]
    assert curl(lab, client, f"{url}/healthz")[0] == 200
    assert curl(lab, client, f"{url}/collections")[0] == 401
    assert curl(lab, client, "-H", "api-key: wrong", f"{url}/collections")[0] == 401
    assert curl(lab, client, *key, f"{url}/collections")[0] == 200
    assert curl(lab, client, "-H", f"Authorization: Bearer {creds['qdrant']}", f"{url}/metrics")[0] == 200
    status, _ = curl(lab, client, *key, "-X", "PUT", f"{url}/collections/dev_documents", "-H",
                     "Content-Type: application/json", "-d", '{"vectors": {"size": 4, "distance": "Cosine"}}')
    assert status == 200
    points = [{"id": i, "vector": [i, 1, 0, 0], "payload": {"document_id": f"doc-{i % 2}"}} for i in range(1, 6)]
    status, _ = curl(lab, client, *key, "-X", "PUT", f"{url}/collections/dev_documents/points?wait=true",
                     "-H", "Content-Type: application/json", "-d", json.dumps({"points": points}))
    assert status == 200
    # tools/promote_qdrant.py's calls: count and scroll by document_id.
    flt = {"must": [{"key": "document_id", "match": {"any": ["doc-1"]}}]}
    _, body = curl(lab, client, *key, "-X", "POST", f"{url}/collections/dev_documents/points/count",
                   "-H", "Content-Type: application/json", "-d", json.dumps({"filter": flt, "exact": True}))
    assert json.loads(body)["result"]["count"] == 3
    _, body = curl(lab, client, *key, "-X", "POST", f"{url}/collections/dev_documents/points/scroll",
                   "-H", "Content-Type: application/json",
                   "-d", json.dumps({"filter": flt, "limit": 2, "with_payload": True, "with_vector": True}))
    page = json.loads(body)["result"]
    assert [p["id"] for p in page["points"]] == [1, 3] and page["next_page_offset"] == 5

    lab.remove(data["names"]["qdrant"])
    data["names"]["qdrant"] = start_qdrant(lab, backend, creds, data["volumes"]["qdrant"])
    _, body = curl(lab, client, *key, f"{url}/collections/dev_documents")
    assert json.loads(body)["result"]["points_count"] == 5


def test_qdrant_read_only_key_reads_and_cannot_write(lab, backend, creds, client):
    read_only = password()
    lab_volume = lab.volume("qdrant-ro")
    start_qdrant(lab, backend, creds, lab_volume, what="qdrant-ro",
                 extra_env={"QDRANT__SERVICE__READ_ONLY_API_KEY": read_only})
    url = "http://qdrant-ro:6333"
    assert curl(lab, client, "-H", f"api-key: {read_only}", f"{url}/collections")[0] == 200
    assert curl(lab, client, "-H", f"api-key: {read_only}", "-X", "PUT", f"{url}/collections/x",
                "-H", "Content-Type: application/json", "-d", '{"vectors": {"size": 2, "distance": "Dot"}}')[0] == 403


def test_minio_checks_credentials_enforces_policies_and_keeps_objects(lab, backend, creds, data):
    minio = data["names"]["minio"]
    root = {"MC_HOST_local": f"http://{creds['minio_user']}:{creds['minio_password']}@127.0.0.1:9000"}
    assert "versioning is enabled" in lab.exec(minio, "mc", "version", "info", "local/dev-backups", env=root).stdout
    lab.sh(minio, "echo hello > /tmp/a.txt && mc cp /tmp/a.txt local/dev-documents/docs/a.txt", env=root)
    assert lab.exec(minio, "mc", "cat", "local/dev-documents/docs/a.txt", env=root).stdout == "hello\n"
    assert "STANDARD docs/a.txt" in lab.exec(minio, "mc", "ls", "--recursive", "local/dev-documents", env=root).stdout
    assert "ETag" in lab.exec(minio, "mc", "stat", "local/dev-documents/docs/a.txt", env=root).stdout
    for bad in (f"http://{creds['minio_user']}:{password()}@127.0.0.1:9000", f"http://nobody:{password()}@127.0.0.1:9000"):
        refused = lab.exec(minio, "mc", "ls", "bad", env={"MC_HOST_bad": bad}, check=False)
        assert refused.returncode != 0 and ("signature" in refused.stderr or "Access Key" in refused.stderr)

    # Least privilege: a user that may add and read backups, and nothing else.
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"], "Resource": "arn:aws:s3:::dev-backups"},
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": "arn:aws:s3:::dev-backups/*"}]}
    secret = password()
    lab.exec(minio, "sh", "-c", "cat > /tmp/policy.json", input=json.dumps(policy))
    lab.sh(minio, f"mc admin user add local backupjob {secret} && mc admin policy create local backup-job "
                  "/tmp/policy.json && mc admin policy attach local backup-job --user backupjob", env=root)
    job = {"MC_HOST_job": f"http://backupjob:{secret}@127.0.0.1:9000"}
    lab.sh(minio, "mc cp /tmp/a.txt job/dev-backups/sets/x/a.txt", env=job)
    assert lab.exec(minio, "mc", "rm", "job/dev-backups/sets/x/a.txt", env=job, check=False).returncode != 0
    assert lab.exec(minio, "mc", "ls", "job/dev-documents", env=job, check=False).returncode != 0

    lab.remove(minio)
    minio = data["names"]["minio"] = start_minio(lab, backend, creds, data["volumes"]["minio"])
    assert lab.exec(minio, "mc", "cat", "local/dev-documents/docs/a.txt", env=root).stdout == "hello\n"
    assert lab.exec(minio, "mc", "cat", "job/dev-backups/sets/x/a.txt", env=job).stdout == "hello\n"


def test_nginx_has_the_official_layout_a_smoke_probe_wget_and_loadable_modules(lab, frontend):
    conf = lab.volume("nginx-conf")
    nginx = lab.create("nginx", PLAN["nginx"], networks=[(frontend, ["nginx"])],
                       command=router_command(),
                       volumes=[f"{conf}:/etc/nginx/conf.d"],
                       health=Health(['kill -0 "$(cat /var/run/nginx.pid)"'], shell=True))
    lab.wait_healthy(nginx)
    # A fresh volume on conf.d starts with the image's default.conf.
    assert "server_name  localhost" in lab.exec(nginx, "cat", "/etc/nginx/conf.d/default.conf").stdout
    probe = docker("run", "--rm", "--network", frontend, "--entrypoint", "wget", PLAN["nginx"],
                   "-q", "-T", "5", "-O", "-", "http://nginx/")
    assert "Welcome to nginx" in probe.stdout
    modules = ("load_module modules/ngx_http_js_module.so;\nload_module modules/ndk_http_module.so;\n"
               "load_module modules/ngx_http_lua_module.so;\nevents {}\nhttp { server { listen 8081; "
               "location / { content_by_lua_block { ngx.say('lua') } } } }\n")
    lab.exec(nginx, "sh", "-c", "cat > /tmp/modules.conf", input=modules)
    assert lab.exec(nginx, "nginx", "-t", "-c", "/tmp/modules.conf", "-g", "pid /tmp/t.pid;", check=False).returncode == 0
    assert "access.log -> /dev/stdout" in lab.exec(nginx, "ls", "-l", "/var/log/nginx/access.log").stdout


# ---- the app image contract, through the program's release steps ------------------------

def app_env(creds, **override) -> dict:
    """components/app/environment.py's variables for dev."""
    env = {
        "ENVIRONMENT": "dev", "DEBUG": "true", "LOG_LEVEL": "DEBUG", "STRUCTLOG_DEV_MODE": "true",
        "DATABASE_URL": f"postgresql+asyncpg://dev_shia_chatbot:{creds['postgres']}@postgres:5432/dev_shia_chatbot",
        "REDIS_URL": f"redis://:{creds['redis']}@redis:6379/0",
        "QDRANT_URL": "http://qdrant:6333", "QDRANT_COLLECTION": "dev_documents", "QDRANT_API_KEY": creds["qdrant"],
        "MINIO_ENDPOINT": "minio:9000", "MINIO_USE_SSL": "false", "MINIO_BUCKET": "dev-documents",
        "MINIO_ACCESS_KEY": creds["minio_user"], "MINIO_SECRET_KEY": creds["minio_password"],
        "SECRET_KEY": password(), "CORS_ORIGINS": "http://localhost:8080", "ALLOWED_HOSTS": "localhost,127.0.0.1",
        "RATE_LIMIT_PER_MINUTE": "600", "RATE_LIMIT_PER_HOUR": "20000", "DB_POOL_SIZE": "5", "DB_MAX_OVERFLOW": "2",
    }
    return {**env, **override}


def release_script(name: str, **params) -> str:
    from components.host.docker_host import host_script

    return host_script(f"app/scripts/{name}", **params)


def migrate(lab, backend, creds, image) -> subprocess.CompletedProcess:
    from components.host import hardening

    script = release_script("migrate.sh", NAME=lab.name("migrate"), IMAGE=image, NETWORK=backend, MEMORY_MB=512,
                            RIGHTS=hardening.run_flags(hardening.for_service("app")))
    return subprocess.run(["sh", "-c", script], input=env_file(app_env(creds)), capture_output=True, text=True,
                          env=host_env(), timeout=300)


def smoke(lab, frontend, targets, attempts=5) -> subprocess.CompletedProcess:
    from components.host import hardening

    script = release_script("smoke-check.sh", NETWORK=frontend, PROBE_IMAGE=PLAN["nginx"], TARGETS=" ".join(targets),
                            ATTEMPTS=attempts, PAUSE=1, RIGHTS=hardening.run_flags(hardening.PROBE))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=host_env(), timeout=300)


def start_replica(lab, frontend, backend, creds, image, what, aliases=(), env=None, volumes=(),
                  **env_override) -> str:
    name = lab.create(what, image, env=env or app_env(creds, **env_override), volumes=volumes,
                      command=["uvicorn", "src.app.main:app", "--workers", "2", "--host", "0.0.0.0", "--port", "8000"],
                      networks=[(frontend, [what, *aliases]), (backend, [what, *aliases])],
                      health=Health(["curl", "-f", "http://localhost:8000/health"], timeout="10s"))
    lab.wait_healthy(name)
    return name


def app_get(lab, replica, path) -> tuple[int, dict, str]:
    out = lab.exec(replica, "curl", "-s", "-D", "/tmp/headers", "-o", "/tmp/body", "-w", "%{http_code}",
                   f"http://localhost:8000{path}", check=False).stdout
    headers = {}
    for line in lab.exec(replica, "cat", "/tmp/headers").stdout.splitlines()[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    return int(out or 0), headers, lab.exec(replica, "cat", "/tmp/body").stdout


@pytest.fixture(scope="module")
def blue(lab, frontend, backend, creds, data):
    """Release 1.0.0 to a slot: migrate (twice: re-runnable), one replica, the smoke check."""
    for _ in range(2):
        result = migrate(lab, backend, creds, APP_1_0)
        assert result.returncode == 0, result.stdout + result.stderr
    # `app-blue`: the slot's name, which the router resolves per request (settings/naming.py).
    return start_replica(lab, frontend, backend, creds, APP_1_0, "app-blue-1", aliases=["app-blue"])


def test_app_1_0_0_passes_the_release_smoke_check_and_answers_its_contract(lab, frontend, blue):
    result = smoke(lab, frontend, [f"{lab.name('app-blue-1')}:8000"])
    assert result.returncode == 0 and "healthy" in result.stdout, result.stdout + result.stderr
    status, headers, body = app_get(lab, blue, "/health?check_services=true")
    assert status == 200 and json.loads(body)["services"] == dict.fromkeys(["postgres", "redis", "qdrant", "minio"], "ok")
    assert headers["x-app-version"] == "1.0.0"
    assert headers["x-served-by"] == lab.exec(blue, "hostname").stdout.strip()
    created = lab.exec(blue, "curl", "-sf", "-X", "POST", "-H", "Content-Type: application/json",
                       "-d", '{"body": "hello"}', "http://localhost:8000/messages")
    assert json.loads(created.stdout)["version"] == "1.0.0"
    assert app_get(lab, blue, "/docs")[0] == 200
    # Each of the two uvicorn workers counts its own requests (no multiprocess
    # registry): a worker that has answered nothing yet shows no series, and the
    # kernel picks the worker. A worker counts its own /metrics once it answered
    # one, so a few scrapes reach one that has.
    for _ in range(10):
        metrics = app_get(lab, blue, "/metrics")[2]
        if re.search(r'^http_requests_total\{method="\w+",status="200"\} \d', metrics, re.M):
            break
    else:
        raise AssertionError(f"no http_requests_total with status 200 in 10 scrapes:\n{metrics[-2000:]}")
    assert re.search(r"^process_resident_memory_bytes \d", metrics, re.M)


def test_readiness_is_unhealthy_while_a_service_is_down_or_a_credential_is_wrong(lab, frontend, backend, creds,
                                                                                 data, blue):
    docker("stop", data["names"]["redis"])
    try:
        status, _, body = app_get(lab, blue, "/health?check_services=true")
        services = json.loads(body)["services"]
        assert status == 503 and json.loads(body)["status"] == "unhealthy"
        assert services["redis"] != "ok" and services["postgres"] == "ok"
        assert app_get(lab, blue, "/health")[0] == 200  # liveness touches nothing
        failed = smoke(lab, frontend, [f"{lab.name('app-blue-1')}:8000"], attempts=1)
        assert failed.returncode != 0 and "not healthy" in failed.stderr
    finally:
        docker("start", data["names"]["redis"])
        lab.wait_healthy(data["names"]["redis"])
    deadline = time.monotonic() + 30
    while app_get(lab, blue, "/health?check_services=true")[0] != 200:
        assert time.monotonic() < deadline, "the app did not become ready again after Redis came back"
        time.sleep(1)

    wrong = start_replica(lab, frontend, backend, creds, APP_1_0, "app-wrong-creds",
                          QDRANT_API_KEY=password(), MINIO_SECRET_KEY=password())
    services = json.loads(app_get(lab, wrong, "/health?check_services=true")[2])["services"]
    assert services["qdrant"] != "ok" and services["minio"] != "ok"
    assert services["postgres"] == services["redis"] == "ok"
    lab.remove(wrong)


def test_migrating_to_1_1_0_keeps_1_0_0_serving_and_1_1_0_uses_the_new_column(lab, frontend, backend, creds, data,
                                                                               blue):
    result = migrate(lab, backend, creds, APP_1_1)
    assert result.returncode == 0, result.stdout + result.stderr
    pg = data["names"]["postgres"]
    assert lab.exec(pg, "psql", "-U", "dev_shia_chatbot", "-Atc", "SELECT version_num FROM alembic_version"
                    ).stdout.strip() == "0002"
    # The old slot still writes (the new column is nullable).
    lab.exec(blue, "curl", "-sf", "-X", "POST", "-H", "Content-Type: application/json", "-d", '{"body": "old"}',
             "http://localhost:8000/messages")
    green = start_replica(lab, frontend, backend, creds, APP_1_1, "app-green-1")
    result = smoke(lab, frontend, [f"{lab.name('app-green-1')}:8000"])
    assert result.returncode == 0, result.stdout + result.stderr
    status, headers, body = app_get(lab, green, "/health")
    assert headers["x-app-version"] == "1.1.0" and json.loads(body)["version"] == "1.1.0"
    lab.exec(green, "curl", "-sf", "-X", "POST", "-H", "Content-Type: application/json", "-d", '{"body": "new"}',
             "http://localhost:8000/messages")
    rows = lab.exec(pg, "psql", "-U", "dev_shia_chatbot", "-Atc",
                    "SELECT body, served_by IS NOT NULL FROM messages ORDER BY id").stdout.split()
    assert rows == ["hello|f", "old|f", "new|t"]


def test_router_config_is_applied_into_nginx_and_proxies_to_the_switched_slot(lab, frontend, blue):
    """The router's two steps as components/router/router.py runs them: the bundle
    (default.conf, router.js) installed and served, then the slot file written."""
    from components.router.nginx_config import APPLY_SCRIPT, CONF_DIR, SLOT_FILE, STATUS_URL, SWITCH_SCRIPT, RouterSpec
    from components.router.router import LOAD_NJS

    nginx = lab.name("nginx")
    if docker("inspect", nginx, check=False).returncode != 0:
        pytest.skip("needs the nginx container of the nginx test")
    spec = RouterSpec(environment="dev", server_name="localhost", http_port=80, rate_per_minute=600)
    env = {"ROUTER_DIR": CONF_DIR, "NGINX_GLOBALS": LOAD_NJS, "STATUS_URL": STATUS_URL, "EXPECT": spec.config_digest}
    applied = lab.exec(nginx, "sh", "-c", APPLY_SCRIPT, env=env, input=spec.bundle())
    assert "applied and served" in applied.stdout, applied.stderr
    # No slot chosen yet: nothing to send to. The step returned only once no worker of
    # the image's own default.conf (404 for /health) still accepts.
    assert " 503 " in lab.exec(nginx, "wget", "-q", "-S", "-O", "-", "http://localhost/health", check=False).stderr
    switched = lab.exec(nginx, "sh", "-c", SWITCH_SCRIPT, input="blue\n",
                        env={"SLOT_FILE": f"{CONF_DIR}/{SLOT_FILE}", "STATUS_URL": STATUS_URL})
    assert "slot blue serves" in switched.stdout, switched.stderr
    through = lab.exec(nginx, "wget", "-q", "-S", "-O", "-", "http://localhost/health", check=False)
    assert '"status":"healthy"' in through.stdout, through.stderr
    assert "X-Served-Slot: blue" in through.stderr and "x-app-version: 1.0.0" in through.stderr.lower()
    refused = lab.exec(nginx, "sh", "-c", APPLY_SCRIPT, env=env, input="dGhpcyBpcyBub3QgYSB0YXIK\n", check=False)
    assert refused.returncode != 0


def test_celery_worker_answers_ping_and_flower_serves_health_auth_and_metrics(lab, frontend, backend, creds, blue):
    worker = lab.create("worker-blue", APP_1_0, env=app_env(creds),
                        command=["celery", "-A", "src.app.tasks", "worker", "--loglevel=info", "--concurrency=2"],
                        networks=[(backend, ["worker"]), (frontend, ["worker"])],
                        health=Health(['celery -A src.app.tasks inspect ping -d "celery@$HOSTNAME" --timeout 10'],
                                      shell=True, timeout="20s"))
    lab.wait_healthy(worker, timeout=180)
    added = lab.exec(blue, "curl", "-sf", "-X", "POST", "http://localhost:8000/tasks/add?x=2&y=3")
    assert json.loads(added.stdout)["result"] == 5

    flower = lab.create("flower-blue", APP_1_0, env={**app_env(creds), "FLOWER_BASIC_AUTH": f"admin:{creds['flower']}"},
                        command=["celery", "-A", "src.app.tasks", "flower", "--port=5555"],
                        networks=[(backend, ["flower"])],
                        health=Health(["curl", "-fs", "-o", "/dev/null", "http://localhost:5555/healthcheck"],
                                      timeout="10s"))
    lab.wait_healthy(flower)
    code = lambda *a: lab.exec(flower, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *a).stdout  # noqa: E731
    assert code("http://localhost:5555/") == "401"
    assert code("-u", f"admin:{creds['flower']}", "http://localhost:5555/") == "200"
    assert code("-u", f"admin:{password()}", "http://localhost:5555/") == "401"
    deadline = time.monotonic() + 60
    while True:
        metrics = lab.exec(flower, "curl", "-s", "-u", f"admin:{creds['flower']}",
                           "http://localhost:5555/metrics").stdout
        if re.search(r"^flower_worker_online\{.*\} 1\.0", metrics, re.M):
            break
        assert time.monotonic() < deadline, "Flower never reported the worker online:\n" + metrics[-2000:]
        time.sleep(2)


# ---- *_FILE: secrets as files, as on Swarm (docs/app-image.md) ------------------------------

SECRETS_DIR = "/run/secrets"
APP_UID = 10001  # the image's user


def secret_volume(lab, what: str, values: dict[str, str]) -> str:
    """A volume with one file per value, owned by the app's user, mode 0400, as
    Swarm mounts a secret (components/swarm/secrets.py). Each file ends with a
    newline, as `echo value | docker secret create` writes it. The values go in
    through stdin, never onto the host's disk outside the volume."""
    volume = lab.volume(what)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        for name, value in values.items():
            data = f"{value}\n".encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o400, int(time.time())
            info.uid = info.gid = APP_UID
            tar.addfile(info, io.BytesIO(data))
    docker("run", "--rm", "-i", *lab_label(lab), "--network", "none", "--user", "0", "--entrypoint", "tar",
           "-v", f"{volume}:/s", APP_1_1, "-x", "-C", "/s", input=tar_bytes.getvalue())
    return volume


def lab_label(lab) -> list[str]:
    """A one-off `docker run --rm`'s label, so cleanup() finds it if it outlives the test."""
    return ["--label", f"{RUN_LABEL}={lab.run_id}"]


def from_files(env: dict, names: list[str]) -> dict:
    """`env` with each of `names` replaced by NAME_FILE=/run/secrets/<name>."""
    return {**{k: v for k, v in env.items() if k not in names}, **{f"{n}_FILE": f"{SECRETS_DIR}/{n}" for n in names}}


def test_every_entry_point_reads_its_secrets_from_files(lab, frontend, backend, creds, blue):
    from components.host import hardening

    env = {**app_env(creds), "FLOWER_BASIC_AUTH": f"admin:{creds['flower']}"}
    names = ["DATABASE_URL", "REDIS_URL", "QDRANT_API_KEY", "MINIO_SECRET_KEY", "SECRET_KEY", "FLOWER_BASIC_AUTH"]
    volume = secret_volume(lab, "app-secrets", {n: env[n] for n in names})
    files = from_files(env, names)
    mount = f"{volume}:{SECRETS_DIR}:ro"

    # Migrations as migrate.sh runs them: the app's rights, the environment from stdin.
    migrated = docker("run", "--rm", "-i", *lab_label(lab), "--network", backend, "--env-file", "/dev/stdin",
                      "-v", mount, *hardening.run_flags(hardening.for_service("app")).split(),
                      APP_1_1, "alembic", "upgrade", "head", input=env_file(files), check=False)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    app = start_replica(lab, frontend, backend, creds, APP_1_1, "app-files", env=files, volumes=[mount])
    status, _, body = app_get(lab, app, "/health?check_services=true")
    assert status == 200 and json.loads(body)["status"] == "healthy", body
    shown = docker("inspect", "--format", "{{json .Config.Env}}", app).stdout
    assert not [n for n in names if env[n] in shown]

    # Its healthcheck is a `docker exec`, which skips the entrypoint: config.py reads the files.
    worker = lab.create("worker-files", APP_1_1, env=files, volumes=[mount],
                        command=["celery", "-A", "src.app.tasks", "worker", "--loglevel=info", "--concurrency=1"],
                        networks=[(backend, ["worker-files"])],
                        health=Health(['celery -A src.app.tasks inspect ping -d "celery@$HOSTNAME" --timeout 10'],
                                      shell=True, timeout="20s"))
    lab.wait_healthy(worker, timeout=180)

    flower = lab.create("flower-files", APP_1_1, env=files, volumes=[mount],
                        command=["celery", "-A", "src.app.tasks", "flower", "--port=5555"],
                        networks=[(backend, ["flower-files"])],
                        health=Health(["curl", "-fs", "-o", "/dev/null", "http://localhost:5555/healthcheck"],
                                      timeout="10s"))
    lab.wait_healthy(flower)
    code = lambda *a: lab.exec(flower, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *a).stdout  # noqa: E731
    assert code("http://localhost:5555/") == "401"
    assert code("-u", f"admin:{creds['flower']}", "http://localhost:5555/") == "200"
    for container in (app, worker, flower):
        lab.remove(container)


def test_a_secret_set_both_ways_stops_the_app_with_a_clear_message(lab, creds):
    volume = secret_volume(lab, "both-secrets", {"DATABASE_URL": password()})
    both = env_file({**app_env(creds), "DATABASE_URL_FILE": f"{SECRETS_DIR}/DATABASE_URL"})
    run = ["run", "--rm", "-i", *lab_label(lab), "--network", "none", "--env-file", "/dev/stdin",
           "-v", f"{volume}:{SECRETS_DIR}:ro"]
    message = "error: both DATABASE_URL and DATABASE_URL_FILE are set (but are exclusive)"
    # The entrypoint, before the command starts.
    refused = docker(*run, APP_1_1, "uvicorn", "src.app.main:app", input=both, check=False, timeout=60)
    assert refused.returncode == 1 and refused.stderr.strip() == message, refused.stdout + refused.stderr
    # config.py, for a process that skips the entrypoint (`docker exec`).
    refused = docker(*run, "--entrypoint", "python3", APP_1_1, "-c", "import src.app.config", input=both,
                     check=False, timeout=60)
    assert refused.returncode == 1 and refused.stderr.strip() == message, refused.stdout + refused.stderr


# ---- monitoring, as components/monitoring/monitoring.py runs it ---------------------------

def router_command() -> list[str]:
    """nginx's command as components/router/router.py sets it (njs loaded)."""
    from components.router.nginx_config import WORKER_SHUTDOWN_TIMEOUT
    from components.router.router import LOAD_NJS

    return ["nginx", "-g", f"{LOAD_NJS} daemon off; worker_shutdown_timeout {WORKER_SHUTDOWN_TIMEOUT};"]


def _wget(port: int, path: str = "/") -> Health:
    return Health(["wget", "-q", "-O", "/dev/null", f"http://localhost:{port}{path}"])


def test_prometheus_and_alertmanager_start_with_uploaded_config_and_take_targets(lab, backend):
    from components.monitoring import prometheus as mc

    config = ("global: {scrape_interval: 15s}\nscrape_configs:\n"
              "  - job_name: app\n    file_sd_configs: [{files: [targets/app.json], refresh_interval: 30s}]\n")
    prom = lab.create("prometheus", PLAN["prometheus"], networks=[(backend, ["prometheus"])],
                      command=[f"--config.file={mc.CONFIG_DIR}/{mc.CONFIG_FILE}", "--storage.tsdb.path=/prometheus",
                               "--storage.tsdb.retention.time=7d"],
                      volumes=[f"{lab.volume('prometheus-tsdb')}:/prometheus"],
                      uploads={f"{mc.CONFIG_DIR}/{mc.CONFIG_FILE}": config,
                               f"{mc.CONFIG_DIR}/{mc.QDRANT_API_KEY_FILE}": password()},
                      health=_wget(mc.PROMETHEUS_PORT, "/-/ready"))
    lab.wait_healthy(prom)
    assert lab.exec(prom, "id", "-u").stdout.strip() == "65534"
    # The targets step of monitoring.py, into the running container as its own user.
    path = f"{mc.CONFIG_DIR}/{mc.targets_file('app')}"
    lab.exec(prom, "sh", "-c", f'set -eu; mkdir -p "$(dirname {path})"; cat > {path}.next; mv {path}.next {path}',
             input='[{"targets": ["app-blue-1:8000"]}]\n')

    am = lab.create("alertmanager", PLAN["alertmanager"], networks=[(backend, ["alertmanager"])],
                    command=["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager",
                             "--cluster.listen-address="],
                    volumes=[f"{lab.volume('alertmanager-state')}:/alertmanager"],
                    uploads={"/etc/alertmanager/alertmanager.yml": "route: {receiver: none}\nreceivers: [{name: none}]\n"},
                    health=_wget(mc.ALERTMANAGER_PORT, "/-/ready"))
    lab.wait_healthy(am)


def test_exporters_reach_postgres_and_redis_and_node_exporter_reads_the_textfile(lab, backend, creds, data):
    from components.monitoring import prometheus as mc

    pg_exporter = lab.create("postgres-exporter", PLAN["postgresExporter"], networks=[(backend, ["postgres-exporter"])],
                             env={"DATA_SOURCE_URI": "postgres:5432/dev_shia_chatbot?sslmode=disable",
                                  "DATA_SOURCE_USER": "dev_shia_chatbot", "DATA_SOURCE_PASS": creds["postgres"]},
                             health=_wget(mc.POSTGRES_EXPORTER_PORT))
    redis_exporter = lab.create("redis-exporter", PLAN["redisExporter"], networks=[(backend, ["redis-exporter"])],
                                env={"REDIS_ADDR": "redis://redis:6379", "REDIS_PASSWORD": creds["redis"]},
                                health=_wget(mc.REDIS_EXPORTER_PORT, "/health"))
    textfile = lab.volume("backup-metrics")
    # The backup job writes this file; here a container writes it onto the volume.
    docker("run", "--rm", "--label", f"org.shia-chatbot.e2e.run={lab.run_id}", "-v", f"{textfile}:/metrics",
           PLAN["nginx"], "sh", "-c", 'echo \'shia_chatbot_backup_last_status{service="postgres"} 1\' '
                                     "> /metrics/shia_chatbot_backup.prom")
    node = lab.create("node-exporter", PLAN["nodeExporter"], networks=[(backend, ["node-exporter"])],
                      command=["--collector.disable-defaults", "--collector.filesystem", "--collector.textfile",
                               "--collector.textfile.directory=/textfile"],
                      volumes=[f"{lab.volume('node-probe')}:{mc.DISK_PROBE_PATH}:ro", f"{textfile}:/textfile:ro"],
                      health=_wget(mc.NODE_EXPORTER_PORT))
    for container in (pg_exporter, redis_exporter, node):
        lab.wait_healthy(container)
    scrape = lambda c, port: lab.exec(c, "wget", "-q", "-O", "-", f"http://localhost:{port}/metrics").stdout  # noqa: E731
    assert re.search(r"^pg_up 1", scrape(pg_exporter, mc.POSTGRES_EXPORTER_PORT), re.M)
    assert re.search(r"^redis_up 1", scrape(redis_exporter, mc.REDIS_EXPORTER_PORT), re.M)
    node_metrics = scrape(node, mc.NODE_EXPORTER_PORT)
    assert 'shia_chatbot_backup_last_status{service="postgres"} 1' in node_metrics
    assert f'mountpoint="{mc.DISK_PROBE_PATH}"' in node_metrics
    assert lab.exec(redis_exporter, "id", "-u").stdout.strip() == "59000"
