"""The program's plans applied to a real Docker daemon, and what an operator would see.

Each scenario derives the steps `pulumi up` would take between two mocked plans
(tests/engine/plan.py, the rules tests/test_operations.py holds the program to)
and executes them with tests/e2e/applier.py, which acts as the Docker and
command providers do. Then it asserts behaviour through the real containers:
HTTP through nginx, credentials accepted and refused, container ids and limits,
stop signals, traffic under load.

Two stacks, with their real names (container names are `<env>-…`): the
committed dev stack, and a prod-shaped one (the committed prod config on this
machine's daemon: unix:// host, off-site copies to its own MinIO, both slots
with 2 replicas, hourly+daily backups, monitoring full+alerts, TLS with a
self-signed certificate; two uvicorn workers per replica and a per-client rate
limit the load can pass, because all load comes from one address and the
machine has 2 cores). The prod-shaped stack is applied once and carried
through the scenarios in order. Everything named `dev-…`/`dev_…` and
`prod-…`/`prod_…` is removed before and after, and nothing may be left.

Skipped without a Docker daemon; with CI=true that is a failure instead.
Figures (timings, request counts) are printed in the terminal summary and
written to tests/e2e/results/measurements.json (conftest.py).
"""

from __future__ import annotations

import copy
import http.client
import io
import json
import os
import signal
import ssl
import subprocess
import tarfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from applier import Applied, Applier, ApplyError, Stack
from docker_lab import docker_available

import harness  # tools/ and the project root are on the path (tests/conftest.py)
from components.host import hardening
from components.secrets import password_resource_name
from engine import plan
from engine.rules import CONTAINER, LOCAL_COMMAND, RANDOM_PASSWORD
from settings.defaults import defaults_for
from settings.naming import Naming
from settings.secret_names import DATABASE_ROLES, GENERATED, ROTATABLE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APP_1_0 = "ghcr.io/shia-chatbot/app:1.0.0"
APP_1_1 = "ghcr.io/shia-chatbot/app:1.1.0"
LOG = HERE / "results" / "apply.log"
ENVIRONMENTS = ("dev", "prod")


# ---- the daemon, and a clean slate ---------------------------------------------

def docker(*args: str, check: bool = True, input: Optional[str] = None, timeout: float = 300,
           ) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, input=input, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def owned(env: str) -> dict[str, list[str]]:
    """What carries the environment's names on this daemon: `<env>-…` containers and
    networks, `<env>_…` volumes (the names settings/naming.py gives)."""
    def names(*args: str) -> list[str]:
        return docker(*args, check=False).stdout.split()
    return {
        "containers": [n for n in names("ps", "-a", "--format", "{{.Names}}") if n.startswith(f"{env}-")],
        "networks": [n for n in names("network", "ls", "--format", "{{.Name}}") if n.startswith(f"{env}-")],
        "volumes": [n for n in names("volume", "ls", "--format", "{{.Name}}") if n.startswith(f"{env}_")],
    }


def sweep(env: str) -> None:
    # One container at a time: the CLI removes several at once in parallel, and
    # Docker 20.10 then can lose count of a network's endpoints ("has active
    # endpoints" with none attached) until the daemon restarts.
    for name in owned(env)["containers"]:
        docker("rm", "-f", "-v", name, check=False)
    for kind in ("networks", "volumes"):
        for name in owned(env)[kind]:
            docker(kind[:-1], "rm", name, check=False)
    if owned(env)["networks"] and daemon_restartable():
        restart_docker_daemon()  # what reconciles a lost endpoint count
        for name in owned(env)["networks"]:
            docker("network", "rm", name, check=False)
    left = {k: v for k, v in owned(env).items() if v}
    assert not left, f"{env}: could not remove {left}"


def log_line(line: str) -> None:
    LOG.parent.mkdir(exist_ok=True)
    with LOG.open("a") as out:
        out.write(line + "\n")


def inspect(name: str) -> Optional[dict]:
    result = docker("inspect", name, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def wait_for(what: str, predicate: Callable[[], Any], timeout: float, pause: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f}s")
        time.sleep(pause)


def request(port: int, path: str, *, tls: bool = False, host: str = "localhost", method: str = "GET",
            body: Optional[bytes] = None, timeout: float = 10) -> tuple[int, dict[str, str], str]:
    """A request to a host port nginx publishes (127.0.0.1), as a user's client makes it."""
    if tls:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # self-signed for the scenario
        conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                                                       context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": host, "Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read().decode(errors="replace")
    except OSError as error:
        return 0, {}, str(error)
    finally:
        conn.close()


def assert_all_healthy(stack: Stack, except_: tuple[str, ...] = ()) -> None:
    problems = []
    for name in stack.containers():
        if name in except_:
            continue
        state = (inspect(name) or {}).get("State", {})
        status = (state.get("Health") or {}).get("Status")
        if not state.get("Running") or status != "healthy":
            problems.append(f"{name}: running={state.get('Running')} health={status}")
    assert not problems, problems


def assert_least_privilege(stack: Stack) -> None:
    """Every container runs with the rights components/host/hardening.py gives
    it, as the daemon reports them: all capabilities dropped but its own, the
    root filesystem read-only unless allowed, its tmpfs mounts, its pids limit
    (set by its health step), and no-new-privileges."""
    problems = []
    for name, resource in stack.containers().items():
        host = inspect(name)["HostConfig"]
        rights = hardening.for_service(resource.label("service"))
        expected_pids = rights.pids_limit
        if rights is hardening.SERVICES["postgres"]:
            expected_pids = stack.run.named(f"{name}-healthy").plain("create").split("PIDS_LIMIT=")[1].split()[0]
        seen = (host.get("CapDrop"), sorted(host.get("CapAdd") or []), host.get("ReadonlyRootfs"),
                sorted(host.get("Tmpfs") or {}), str(host.get("PidsLimit")), host.get("SecurityOpt"))
        wanted = (["ALL"], sorted(rights.capabilities), rights.read_only, sorted(rights.tmpfs), str(expected_pids),
                  ["no-new-privileges:true"])
        if seen != wanted:
            problems.append(f"{name}: {seen} != {wanted}")
    assert not problems, problems


def assert_commands_succeeded(applied: Applied) -> None:
    ran = [r for r in applied.results if r.type == LOCAL_COMMAND and "exit_code" in r.details]
    assert ran and all(r.details["exit_code"] == 0 for r in ran), [(r.name, r.details) for r in ran]


# ---- stacks -------------------------------------------------------------------

@dataclass
class Deployed:
    stack: Stack
    config: dict[str, Any]
    error: Optional[BaseException] = None
    first: Optional[Applied] = None
    notes: dict[str, Any] = field(default_factory=dict)

    def up(self, label: str, config: dict[str, Any]) -> Applied:
        applied = self.stack.up(label, config, parallel=True)
        self.config = config
        log_line(f"== {self.stack.name}: {label}: {applied.seconds:.1f}s\n" + "\n".join(applied.summary()))
        return applied

    def require(self) -> None:
        if self.error is not None:
            pytest.fail(f"{self.stack.name} was not deployed: {self.error}")


def deploy(env: str, config: dict[str, Any]) -> Deployed:
    sweep(env)
    stack = Stack(env, Applier(log=log_line))
    deployed = Deployed(stack, config)
    try:
        deployed.first = deployed.up("up from nothing", config)
    except (ApplyError, AssertionError) as error:
        deployed.error = error
    return deployed


@pytest.fixture(scope="module")
def dev():
    deployed = deploy("dev", harness.stack_config("dev"))
    yield deployed
    sweep("dev")


def slots(config: dict[str, Any], **changes: Optional[dict]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    for slot, spec in changes.items():
        if spec is None:
            config["slots"].pop(slot)
        else:
            config["slots"][slot] = spec
    return config


def self_signed(directory: Path, domain: str) -> tuple[str, str]:
    """certbot's layout (live/<domain>/fullchain.pem, privkey.pem) with a made-up certificate."""
    certificates, webroot = directory / "letsencrypt", directory / "certbot"
    live = certificates / "live" / domain
    live.mkdir(parents=True)
    webroot.mkdir()
    # ECDSA P-256, as certbot issues by default: a cheap handshake for the new-connection load.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", f"/CN={domain}", "-keyout", str(live / "privkey.pem"),
                    "-out", str(live / "fullchain.pem")], check=True, capture_output=True)
    for path in (directory, *directory.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)  # nginx's workers read them as its user
    return str(certificates), str(webroot)


def prod_shaped(directory: Path) -> dict[str, Any]:
    config = copy.deepcopy(harness.stack_config("prod"))
    config.pop("dockerHostKey", None)
    certificates, webroot = self_signed(directory, config["domain"])
    blue = {"image": APP_1_0, "replicas": 2}
    config.update({
        "dockerHost": "unix:///var/run/docker.sock",
        "tls": {"enabled": True, "certificateDir": certificates, "webrootDir": webroot},
        "backups": {"schedule": "hourly+daily", "offsite": "minio"},
        "monitoring": {**config.get("monitoring", {}), "level": "full+alerts"},
        "slots": {"blue": blue, "green": dict(blue)},
        # All load comes from one client address, on 2 cores: prod's 60/min per
        # client would answer 429, and 9 uvicorn workers per replica would not fit.
        "app": {**config["app"], "rateLimitPerMinute": 1_000_000, "uvicornWorkers": 2},
    })
    return config


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    directory = tmp_path_factory.mktemp("prod-tls")
    deployed = deploy("prod", prod_shaped(directory))
    yield deployed
    docker("rm", "-f", LOAD_CLIENT, check=False)
    sweep("prod")


# ---- traffic --------------------------------------------------------------------

LOAD_CLIENT = "prod-e2e-load"


class Load:
    """tests/e2e/load_client.py in a container on the stack's frontend network,
    sending to nginx by its alias (https, the stack's domain as Host)."""

    def __init__(self, deployed: Deployed, keepalive: int = 4, fresh: int = 8, pause: float = 0.02,
                 url: str = "https://nginx"):
        self.env = deployed.stack.name
        self.domain = deployed.config.get("domain") or "localhost"
        self.url = url
        self.args = ["--keepalive", str(keepalive), "--fresh", str(fresh), "--pause", str(pause)]
        self.records: list[dict] = []

    def start(self) -> "Load":
        docker("rm", "-f", LOAD_CLIENT, check=False)
        docker("run", "-d", "--name", LOAD_CLIENT, "--network", f"{self.env}-frontend",
               "-v", f"{HERE / 'load_client.py'}:/load_client.py:ro", "--entrypoint", "python3", APP_1_1,
               "/load_client.py", self.url, "--host", self.domain, *self.args)
        return self

    def stop(self) -> list[dict]:
        docker("exec", LOAD_CLIENT, "touch", "/tmp/load.stop")
        docker("wait", LOAD_CLIENT, timeout=120)
        archive = subprocess.run(["docker", "cp", f"{LOAD_CLIENT}:/tmp/load.jsonl", "-"], capture_output=True,
                                 timeout=120)
        assert archive.returncode == 0, archive.stderr.decode() + docker("logs", LOAD_CLIENT, check=False).stderr
        docker("rm", "-f", LOAD_CLIENT, check=False)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            text = tar.extractfile(tar.getmembers()[0]).read().decode()
        self.records = [json.loads(line) for line in text.splitlines()]
        LOG.parent.mkdir(exist_ok=True)
        (LOG.parent / f"load-{time.strftime('%H%M%S')}.jsonl").write_text(text)  # for a failure's post-mortem
        return self.records


class Replicas:
    """Which slot each app replica belongs to, by the hostname its replies carry
    (X-Served-By: the container's short id), kept across replacements."""

    def __init__(self, env: str = "prod"):
        self.env = env
        self.slot_of: dict[str, str] = {}
        self.name_of: dict[str, str] = {}

    def refresh(self) -> None:
        listing = docker("ps", "-a", "--filter", "label=org.shia-chatbot.service=app", "--filter",
                         f"label=org.shia-chatbot.environment={self.env}", "--format",
                         '{{.ID}} {{.Label "org.shia-chatbot.slot"}} {{.Names}}').stdout
        for line in listing.splitlines():
            short_id, slot, name = line.split()
            self.slot_of[short_id[:12]], self.name_of[short_id[:12]] = slot, name

    def slot(self, record: dict) -> Optional[str]:
        return self.slot_of.get(record.get("by") or "")


def failures(records: list[dict], kind: Optional[str] = None, within: Optional[tuple[float, float]] = None):
    return [r for r in records if "error" in r and kind in (None, r["kind"])
            and (within is None or within[0] <= r["start"] <= within[1])]


def nginx_errors(records: list[dict], env: str = "prod") -> str:
    """nginx's error log while `records` were sent (the why of a 502)."""
    since = str(int(records[0]["start"])) if records else "10m"
    logs = docker("logs", "--since", since, f"{env}-nginx", check=False)
    return "\n".join(line for line in logs.stderr.splitlines() if "[error]" in line or "[warn]" in line)[-3000:]


# ---- dev ------------------------------------------------------------------------

def test_dev_up_from_nothing_serves_through_nginx_with_every_container_healthy(dev, measure):
    dev.require()
    applied = dev.first
    critical, chain = applied.critical_path()
    measure("dev: up from nothing, wall (applied in parallel)", applied.seconds)
    measure("dev: up from nothing, critical path", critical, note=" > ".join(chain))
    measure("dev: up from nothing, sum of step durations (sequential)", sum(r.seconds for r in applied.results))
    assert {r.kind for r in applied.results} == {"create"}
    assert_commands_succeeded(applied)
    assert_all_healthy(dev.stack)
    assert_least_privilege(dev.stack)
    status, headers, body = request(8080, "/health?check_services=true")
    assert status == 200, body
    assert json.loads(body)["services"] == dict.fromkeys(["postgres", "redis", "qdrant", "minio"], "ok")
    assert headers["x-served-slot"] == "blue" and headers["x-app-version"] == "1.0.0"
    assert "router: slot blue serves" in applied.named("dev-router-switch").output
    # Flower: loopback only, behind basic auth.
    assert request(5555, "/")[0] == 401
    # An up right after plans nothing.
    assert [str(s) for s in dev.stack.planned(dev.config)[1]] == []


def _backup(env: str, *args: str) -> subprocess.CompletedProcess:
    return docker("exec", f"{env}-backup", "/opt/shia-backup/bin/backup", *args, check=False, timeout=300)


def _psql(env: str, sql: str) -> str:
    user = Naming(env).database_user
    return docker("exec", f"{env}-postgres", "psql", "-U", user, "-d", Naming(env).database, "-Atc", sql).stdout.strip()


def _restore_postgres(env: str, target: str) -> subprocess.CompletedProcess:
    """The operator's path: `make restore SERVICE=postgres TARGET=...` runs this script on the host."""
    return subprocess.run(["sh", str(ROOT / "components/backups/scripts/postgres-restore.sh"), target],
                          env={**os.environ, "POSTGRES_CONTAINER": f"{env}-postgres", "BACKUP_CONTAINER": f"{env}-backup"},
                          capture_output=True, text=True, timeout=600)


def _messages(env: str, prefix: str) -> int:
    return int(_psql(env, f"SELECT count(*) FROM messages WHERE body LIKE '{prefix}%'"))


def test_dev_backups_on_pgbackrest_and_restic_and_restores_in_the_real_containers(dev, measure):
    dev.require()
    # The release's pre-migration backup ran as a step of the up: a named restore
    # point, its WAL archived (a full backup first: this stack had none).
    step = dev.first.named("dev-app-blue-backup")
    service, point = step.details["stdout"].strip().splitlines()[-1].split()
    assert service == "postgres" and point.startswith("pre-migration-blue-"), step.output
    measure("dev: pre-migration restore point (first release, full backup included)", step.seconds)
    init = docker("exec", "dev-backup", "pgbackrest", "info", "--output=json").stdout
    assert json.loads(init)[0]["status"]["message"] == "ok", init

    # A fresh stack: the collection does not exist yet, the bucket is empty. The
    # scheduled run still succeeds, and says so honestly (issue 12).
    fresh = _backup("dev", "all", "--reason", "manual")
    assert fresh.returncode == 0, fresh.stderr
    assert "does not exist" in fresh.stderr, fresh.stderr

    # Redis keeps its default save points: a backup while a BGSAVE runs (made slow) is not refused.
    docker("exec", "dev-redis", "redis-cli", "--user", "admin", "CONFIG", "SET", "rdb-key-save-delay", "20000")
    docker("exec", "dev-redis", "sh", "-c",
           "for i in $(seq 1 300); do echo SET e2e:$i $i; done | redis-cli --user admin > /dev/null")
    docker("exec", "dev-redis", "redis-cli", "--user", "admin", "BGSAVE")
    saving = docker("exec", "dev-redis", "redis-cli", "--user", "admin", "INFO", "persistence").stdout
    assert "rdb_bgsave_in_progress:1" in saving, saving
    redis_backup = _backup("dev", "redis", "--reason", "manual")
    docker("exec", "dev-redis", "redis-cli", "--user", "admin", "CONFIG", "SET", "rdb-key-save-delay", "0")
    assert redis_backup.returncode == 0, redis_backup.stderr

    # A stack in use: the collection exists (the app makes it when documents come:
    # its vector size is the embedding model's), rows were written through nginx.
    key = harness.unwrap(next(e for e in dev.stack.containers()["dev-qdrant"].inputs["envs"]
                              if e.startswith("QDRANT__SERVICE__API_KEY="))).split("=", 1)[1]
    made = docker("exec", "dev-app-blue-1", "curl", "-sf", "-X", "PUT", "-H", f"api-key: {key}", "-H",
                  "Content-Type: application/json", "-d", '{"vectors": {"size": 4, "distance": "Cosine"}}',
                  "http://dev-qdrant:6333/collections/dev_documents", check=False)
    assert made.returncode == 0, made.stderr

    def post(prefix: str, count: int) -> None:
        for index in range(count):
            status, _, body = request(8080, "/messages", method="POST",
                                      body=json.dumps({"body": f"{prefix}{index}"}).encode())
            assert status == 201, body
    post("e2e-before-", 5)
    points = '{"points": [' + ",".join(f'{{"id": {i}, "vector": [0.1, 0.2, 0.3, {i}]}}' for i in range(1, 8)) + "]}"
    upserted = docker("exec", "dev-app-blue-1", "curl", "-sf", "-X", "PUT", "-H", f"api-key: {key}", "-H",
                      "Content-Type: application/json", "-d", points,
                      "http://dev-qdrant:6333/collections/dev_documents/points?wait=true", check=False)
    assert upserted.returncode == 0, upserted.stderr
    minio = dict(harness.unwrap(e).split("=", 1) for e in dev.stack.containers()["dev-minio"].inputs["envs"])
    mc_root = f"MC_HOST_local=http://{minio['MINIO_ROOT_USER']}:{minio['MINIO_ROOT_PASSWORD']}@127.0.0.1:9000"
    docker("exec", "-e", mc_root, "dev-minio", "sh", "-c",
           "echo 'the first document' > /tmp/d1.txt && mc cp /tmp/d1.txt local/dev-documents/docs/d1.txt")
    scheduled = _backup("dev", "all", "--reason", "manual")
    assert scheduled.returncode == 0, scheduled.stderr
    ids = dict(line.split(" ", 1) for line in scheduled.stdout.strip().splitlines())
    assert set(ids) == {"postgres", "redis", "qdrant", "minio"}, scheduled.stdout
    metrics = docker("exec", "dev-backup", "cat", "/metrics/shia_chatbot_backup.prom").stdout
    for name in ("postgres", "redis", "qdrant", "minio", "offsite-redis", "offsite-qdrant", "offsite-minio"):
        assert f'shia_chatbot_backup_last_status{{service="{name}"}} 1' in metrics, metrics
    wal = docker("exec", "dev-backup", "sh", "/opt/shia-backup/lib/postgres.sh", "metrics")
    assert wal.returncode == 0, wal.stderr
    wal_metrics = docker("exec", "dev-backup", "cat", "/metrics/shia_chatbot_wal.prom").stdout
    assert "shia_chatbot_postgres_wal_archived_total" in wal_metrics, wal_metrics
    # Off-site: dev's own MinIO holds restic's repository, read by restic itself.
    offsite = docker("exec", "dev-backup", "sh", "-c",
                     'restic -r "$RESTIC_OFFSITE_REPOSITORY" snapshots --json', check=False)
    assert offsite.returncode == 0 and len(json.loads(offsite.stdout)) >= 3, offsite.stderr

    # A named restore point between two writes, then PostgreSQL recovered to it from
    # the host, as an operator would: the rows after it are gone, the rows before stay.
    marked = _backup("dev", "postgres", "--reason", "pre-migration-e2e")
    assert marked.returncode == 0, marked.stderr
    point = marked.stdout.split()[-1]
    post("e2e-after-", 3)
    _psql("dev", "DELETE FROM messages WHERE body LIKE 'e2e-before-%'")
    started = time.monotonic()
    restored = _restore_postgres("dev", point)
    measure("dev: PostgreSQL recovered to a restore point (stop, restore, recover, checkpoint)",
            time.monotonic() - started)
    assert restored.returncode == 0, restored.stderr
    assert (_messages("dev", "e2e-before-"), _messages("dev", "e2e-after-")) == (5, 0)
    wait_for("the app answers check_services after the restore",
             lambda: request(8080, "/health?check_services=true")[0] == 200, 60)
    # A target the repository cannot reach is refused before anything stops.
    postgres_started = inspect("dev-postgres")["State"]["StartedAt"]
    refused = _restore_postgres("dev", "2001-01-01 00:00:00")
    assert refused.returncode == 2 and inspect("dev-postgres")["State"]["StartedAt"] == postgres_started

    # Qdrant and MinIO online, from their snapshots: the points and the document come back.
    docker("exec", "dev-app-blue-1", "curl", "-sf", "-X", "POST", "-H", f"api-key: {key}", "-H",
           "Content-Type: application/json", "-d", '{"points": [1, 2, 3]}',
           "http://dev-qdrant:6333/collections/dev_documents/points/delete?wait=true")
    docker("exec", "-e", mc_root, "dev-minio", "mc", "rm", "local/dev-documents/docs/d1.txt")
    for service in ("qdrant", "minio"):
        done = docker("exec", "dev-backup", "/opt/shia-backup/bin/restore", service, "latest", check=False, timeout=300)
        assert done.returncode == 0, done.stderr
    collection = docker("exec", "dev-app-blue-1", "curl", "-sf", "-H", f"api-key: {key}",
                        "http://dev-qdrant:6333/collections/dev_documents").stdout
    assert json.loads(collection)["result"]["points_count"] == 7, collection
    assert docker("exec", "-e", mc_root, "dev-minio", "mc", "cat",
                  "local/dev-documents/docs/d1.txt").stdout == "the first document\n"

    # Redis online: the live server replicates the snapshot, then serves it.
    docker("exec", "dev-redis", "redis-cli", "--user", "admin", "DEL", "e2e:1", "e2e:2")
    redis_restore = docker("exec", "dev-backup", "/opt/shia-backup/bin/restore", "redis", "latest", check=False,
                           timeout=300)
    assert redis_restore.returncode == 0, redis_restore.stderr
    assert docker("exec", "dev-redis", "redis-cli", "--user", "admin", "GET", "e2e:2").stdout.strip() == "2"
    # Docker's verdicts follow at the next health probes: PostgreSQL restarted, and
    # the worker, which exits when its database goes, was restarted by Docker.
    wait_for("every container reported healthy again", lambda: not _unhealthy(dev.stack, ()), 120)


def test_dev_destroy_stops_every_container_with_its_signal_within_its_grace(dev, measure):
    dev.require()
    running = set(dev.stack.containers())
    applied = dev.stack.destroy()
    log_line("== dev: destroy\n" + "\n".join(applied.summary()))
    measure("dev: destroy, wall", applied.seconds)
    stops = [r.details["stopped"] for r in applied.results if "stopped" in r.details]
    assert {s["name"] for s in stops} == running
    killed = [s for s in stops if s["exit_code"] == 137 or s["oom_killed"] or s["seconds"] >= s["grace"]]
    assert not killed, f"SIGKILLed, not stopped by their stop signal within the grace: {killed}"
    assert not any(owned("dev").values()), owned("dev")


# ---- prod-shaped: up, release, switch, roll back ---------------------------------

def test_prod_up_from_nothing_serves_https_with_every_container_healthy(prod, measure):
    prod.require()
    applied = prod.first
    critical, chain = applied.critical_path()
    measure("prod: up from nothing, wall (applied in parallel)", applied.seconds)
    measure("prod: up from nothing, critical path", critical, note=" > ".join(chain))
    assert_commands_succeeded(applied)
    assert_all_healthy(prod.stack)
    assert_least_privilege(prod.stack)
    domain = prod.config["domain"]
    status, headers, body = request(443, "/health?check_services=true", tls=True, host=domain)
    assert status == 200 and json.loads(body)["status"] == "healthy", body
    assert headers["x-served-slot"] == "blue"
    assert headers["strict-transport-security"].startswith("max-age=")
    status, headers, _ = request(80, "/chat?q=1", host=domain)
    assert status == 301 and headers["location"] == f"https://{domain}/chat?q=1"
    # The backup job's schedule is installed, and crond runs it.
    crontab = docker("exec", "prod-backup", "cat", "/etc/crontabs/root").stdout
    assert "30 * * * * /opt/shia-backup/bin/backup redis qdrant minio --reason hourly" in crontab, crontab
    assert "0 2 * * * /opt/shia-backup/bin/backup all --reason daily" in crontab, crontab
    assert docker("exec", "prod-backup", "pgrep", "-x", "crond", check=False).returncode == 0
    # Both slots released their image: each migrated, and green only after blue.
    assert applied.named("prod-app-green-migrate").started >= applied.named("prod-app-blue-migrate").ended


def _switch_window(applied: Applied) -> tuple[float, float]:
    step = applied.named("prod-router-switch")
    return step.started, step.ended


def test_release_switch_and_roll_back_under_load_lose_no_request(prod, measure):
    prod.require()
    replicas = Replicas()
    replicas.refresh()
    load = Load(prod).start()
    wait_for("the load client's first replies", lambda: request(443, "/health", tls=True,
                                                                 host=prod.config["domain"])[0] == 200, 30)
    time.sleep(3)
    released = slots(prod.config, green={"image": APP_1_1, "replicas": 2})
    try:
        release = prod.up("release 1.1.0 to green", released)
        replicas.refresh()
        switch = prod.up("switch to green", {**released, "activeSlot": "green"})
        replicas.refresh()
        time.sleep(2)
        rollback = prod.up("roll back to blue", released)
        replicas.refresh()
        time.sleep(2)
    finally:
        records = load.stop()
    replicas.refresh()

    # The release ran green's pre-migration backup and its migration, once, with the new image.
    for name in ("prod-app-green-backup", "prod-app-green-migrate"):
        assert release.named(name, "replace").details.get("script") == "create"
    assert "pre-migration-green" in release.named("prod-app-green-backup", "replace").details["stdout"]
    measure("prod: release to the idle slot, wall", release.seconds)

    by_kind = {kind: [r for r in records if r["kind"] == kind] for kind in ("keepalive", "fresh")}
    # Enough of each kind for "none failed" to mean something (about 4,300 and 9,400 here).
    assert all(len(v) >= 4000 for v in by_kind.values()), {k: len(v) for k, v in by_kind.items()}
    measure("prod: requests during release, switch and roll back", len(records), unit="requests",
            note=f"{len(by_kind['keepalive'])} kept-alive POST, {len(by_kind['fresh'])} new-connection GET")
    failed = failures(records)
    assert not failed, f"{len(failed)} failed: {failed[:5]}"
    unknown = [r for r in records if replicas.slot(r) is None]
    assert not unknown, f"replies from no known replica: {unknown[:3]}"
    # nginx's X-Served-Slot names the slot that answered.
    assert not [r for r in records if r["slot"] != replicas.slot(r)][:1]

    # Who answers: blue until the switch step starts, green once it has returned, blue again after the rollback.
    switch_start, switch_end = _switch_window(switch)
    back_start, back_end = _switch_window(rollback)
    phases = [("before the switch", None, switch_start, "blue"), ("after the switch", switch_end, back_start, "green"),
              ("after the roll back", back_end, None, "blue")]
    for label, after, before, slot in phases:
        window = [r for r in records if (after is None or r["start"] > after) and (before is None or r["end"] < before)]
        assert window, label
        wrong = [r for r in window if replicas.slot(r) != slot]
        assert not wrong, f"{label}: {len(wrong)} of {len(window)} answered by another slot: {wrong[:3]}"
    assert {r["version"] for r in records if replicas.slot(r) == "green"} == {"1.1.0"}

    for label, applied, new in (("switch", switch, "green"), ("roll back", rollback, "blue")):
        start, end = _switch_window(applied)
        first = min(r["end"] for r in records if replicas.slot(r) == new and r["end"] >= start)
        measure(f"prod: {label}: switch step start -> first answer from {new}", first - start)
        measure(f"prod: {label}: switch step duration", end - start)
        assert first - start <= 1.0
        # Kept-alive connections lived through the switch: a reload would have closed them.
        spanning = {r["port"] for r in records if r["kind"] == "keepalive" and r["end"] < start} & {
            r["port"] for r in records if r["kind"] == "keepalive" and r["start"] > end}
        assert spanning, f"{label}: no kept-alive connection carried requests before and after the switch"
        kept = failures(records, "keepalive", (applied.started, applied.ended))
        measure(f"prod: {label}: kept-alive requests failed during the update", len(kept), unit="requests")
        measure(f"prod: {label}: update wall", applied.seconds)
    worker = switch.named("prod-worker-green", "create")
    measure("prod: switch: new worker created and healthy", worker.seconds,
            note=f"started {worker.started - switch.started:.1f}s into the update")
    assert switch.named("prod-worker-blue", "delete").details["at_end"]


def test_prometheus_scrapes_every_target_of_the_stack(prod):
    prod.require()

    def targets() -> list[dict]:
        answer = docker("exec", "prod-prometheus", "wget", "-q", "-O", "-", "http://localhost:9090/api/v1/targets",
                        check=False).stdout
        return json.loads(answer)["data"]["activeTargets"] if answer else []

    # file_sd picks the targets files up within its 30 s refresh, and every target is scraped every 15 s.
    wanted = {"prometheus", "app", "celery", "postgres", "redis", "qdrant", "node", "alertmanager"}
    found = wait_for("every target scraped and up",
                     lambda: (t := targets()) and {x["labels"]["job"] for x in t} == wanted
                     and all(x["health"] == "up" for x in t) and t, 90, pause=3)
    apps = {x["labels"]["container"] for x in found if x["labels"]["job"] == "app"}
    assert apps == {f"prod-app-{s}-{i}" for s in ("blue", "green") for i in (1, 2)}

    def query(expression: str) -> list[dict]:
        answer = docker("exec", "prod-prometheus", "wget", "-q", "-O", "-",
                        "http://localhost:9090/api/v1/query?query=" + urllib.parse.quote(expression)).stdout
        return json.loads(answer)["data"]["result"]

    # The rule files loaded, and the backup job's metrics reach Prometheus through
    # node-exporter's textfile collector (the pre-migration backups of the up).
    rules = json.loads(docker("exec", "prod-prometheus", "wget", "-q", "-O", "-",
                              "http://localhost:9090/api/v1/rules").stdout)["data"]["groups"]
    assert rules and all(rule["health"] == "ok" for group in rules for rule in group["rules"]), rules
    status = query('shia_chatbot_backup_last_status{service="postgres"}')
    assert [float(s["value"][1]) for s in status] == [1.0], status
    # No critical alert pending or firing, but BackupMissing: a new stack has no daily backup yet.
    alerts = [a["labels"] for a in query('ALERTS{severity="critical", alertname!="BackupMissing"}')]
    assert not alerts, alerts


# ---- prod-shaped: memory, rotation, host restart, retire ---------------------------

def test_memory_raised_4x_is_applied_in_place_and_the_next_up_plans_nothing(prod):
    prod.require()
    names = list(prod.stack.containers())
    ids = {name: inspect(name)["Id"] for name in names}
    memory = {k: v * 4 for k, v in defaults_for("prod")["memoryMb"].items()}
    applied = prod.up("memory x4", {**prod.config, "memoryMb": memory})
    # docs/operations.md: every container updated in place; Prometheus, whose alert
    # rules carry the limits, replaced.
    replaced = {r.name for r in applied.results if r.type == CONTAINER and r.kind != "update"}
    assert replaced == {"prod-prometheus"}
    for name in names:
        container = inspect(name)
        if name not in replaced:
            assert container["Id"] == ids[name], f"{name} was recreated"
        service = container["Config"]["Labels"]["org.shia-chatbot.service"]
        limit = memory[service] * 1024 * 1024
        assert (container["HostConfig"]["Memory"], container["HostConfig"]["MemorySwap"]) == (limit, limit), name
    # Redis's maxmemory follows the new limit (three quarters), set live by its step.
    maxmemory = docker("exec", "prod-redis", "redis-cli", "--user", "admin", "CONFIG", "GET",
                       "maxmemory").stdout.split()[-1]
    assert int(maxmemory) == memory["redis"] * 3 // 4 * 1024 * 1024
    assert_all_healthy(prod.stack)
    assert [str(s) for s in prod.stack.planned(prod.config)[1]] == []


def generated_secrets(run: harness.Run) -> dict[str, str]:
    """The generated secrets of a plan: what the mock made each RandomPassword's result."""
    passwords = {r.name: r for r in plan.resources(run).values() if r.type == RANDOM_PASSWORD}
    found = {}
    for key in GENERATED:
        resource = passwords[password_resource_name(Naming(run.stack), key)]
        found[key] = harness.mock_password(resource.name, int(resource.inputs["length"]), resource.inputs["keepers"])
    return found


def _code(container: str, *curl: str) -> str:
    return docker("exec", container, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *curl, check=False).stdout


def test_rotating_every_generated_secret_on_the_running_stack(prod, measure):
    prod.require()
    old = generated_secrets(prod.stack.run)
    replicas = Replicas()
    replicas.refresh()
    # docs/secrets.md: the live replicas are replaced one at a time while nginx sends
    # the slot's traffic to the others, so a rotation costs no request.
    load = Load(prod).start()
    try:
        time.sleep(3)
        applied = prod.up("rotate every generated secret", {**prod.config, "rotation": dict.fromkeys(ROTATABLE, 1)})
        time.sleep(2)
    finally:
        records = load.stop()
    replicas.refresh()
    prod.notes["rotation"] = (applied, records)
    measure("prod: rotation of every generated secret, wall", applied.seconds)
    for kind in ("keepalive", "fresh"):
        measure(f"prod: rotation: {kind} requests failed", len(failures(records, kind)), unit="requests",
                note=f"of {len([r for r in records if r['kind'] == kind])}")
    live = prod.config["activeSlot"]
    replaced = {r.name for r in applied.results if r.type == CONTAINER and r.kind == "replace"}
    assert {f"prod-app-{live}-1", f"prod-app-{live}-2"} <= replaced
    # Reads: nginx retries them on the other replica while one is replaced.
    assert len(records) >= 1000 and not failures(records, "fresh"), (failures(records, "fresh")[:5],
                                                                      nginx_errors(records))
    assert {replicas.slot(r) for r in records if "error" not in r} == {live}
    new = generated_secrets(prod.stack.run)
    assert all(old[k] != new[k] for k in ROTATABLE) and old["resticPassword"] == new["resticPassword"]
    assert_all_healthy(prod.stack)
    env, n = "prod", Naming("prod")

    def psql(user: str, password: str) -> subprocess.CompletedProcess:
        return docker("exec", "-e", f"PGPASSWORD={password}", f"{env}-postgres", "psql", "-h", f"{env}-postgres",
                      "-U", user, "-d", "postgres", "-Atc", "SELECT 1", check=False)
    # The superuser and every login role of postgres-roles.sh: the new password in, the old one out.
    users = {"postgresPassword": n.database_user,
             **{secret: n.database_role(purpose) for purpose, secret in DATABASE_ROLES.items()}}
    for secret, user in users.items():
        assert psql(user, new[secret]).stdout.strip() == "1", secret
        assert "password authentication failed" in psql(user, old[secret]).stderr, secret

    def redis(password: str) -> str:
        return docker("exec", "-e", f"REDISCLI_AUTH={password}", f"{env}-redis", "redis-cli", "--user", "app", "-h",
                      f"{env}-redis", "ping", check=False).stdout
    assert redis(new["redisPassword"]).strip() == "PONG"
    assert "PONG" not in redis(old["redisPassword"])

    probe = f"{env}-app-blue-1"  # on the backend network, with curl
    qdrant = f"http://{env}-qdrant:6333/collections"
    assert _code(probe, "-H", f"api-key: {new['qdrantApiKey']}", qdrant) == "200"
    assert _code(probe, "-H", f"api-key: {old['qdrantApiKey']}", qdrant) == "401"

    def minio(user: str, password: str) -> int:
        return docker("exec", "-e", f"MC_HOST_x=http://{user}:{password}@127.0.0.1:9000", f"{env}-minio", "mc", "ls",
                      "x", check=False).returncode
    assert minio(new["minioRootUser"], new["minioRootPassword"]) == 0
    assert minio(old["minioRootUser"], old["minioRootPassword"]) != 0
    assert minio(new["minioRootUser"], old["minioRootPassword"]) != 0

    flower = f"http://{env}-flower:5555/"
    assert _code(probe, "-u", f"{n.flower_user}:{new['flowerPassword']}", flower) == "200"
    assert _code(probe, "-u", f"{n.flower_user}:{old['flowerPassword']}", flower) == "401"

    for container in [c for c in prod.stack.containers() if c.startswith((f"{env}-app-", f"{env}-worker-"))] + [
            f"{env}-flower"]:
        assert docker("exec", container, "printenv", "SECRET_KEY").stdout.strip() == new["secretKey"], container

    # End to end with the new credentials: the app through nginx, and a backup (PostgreSQL, off-site MinIO).
    status, _, body = request(443, "/health?check_services=true", tls=True, host=prod.config["domain"])
    assert status == 200, body
    backup = _backup(env, "postgres", "--reason", "manual")
    assert backup.returncode == 0, backup.stderr


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "known, reported: (1) POSTs sent to a replica while it stops are reset (uvicorn closes "
    "connections it has accepted but not read) and nginx does not retry a non-idempotent request: "
    "502; (2) after <env>-postgres-set-password, the replicas not yet replaced open new database "
    "connections with the old password: 500. docs/secrets.md promises no request lost"))
def test_a_rotation_costs_no_request(prod):
    """docs/secrets.md: replicas replaced one at a time while nginx sends the slot's traffic
    to the others, "with two or more replicas a rotation costs no request"."""
    prod.require()
    if "rotation" not in prod.notes:
        pytest.fail("the rotation scenario did not run")
    _, records = prod.notes["rotation"]
    failed = failures(records)
    assert not failed, f"{len(failed)} of {len(records)} failed: {failed[:3]}"


def _dockerd() -> Optional[tuple[int, list[str]]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "dockerd":
                    return int(entry.name), (entry / "cmdline").read_text().split("\0")[:-1]
            except OSError:
                continue
    return None


def daemon_restartable() -> bool:
    """A daemon systemd manages is not one to kill and start by hand; CI's (and
    these machines', facts file) is started by hand, without systemd."""
    return not Path("/run/systemd/system").exists() or bool(os.environ.get("E2E_RESTART_DOCKERD"))


def restart_docker_daemon() -> float:
    """As a host reboot does to the daemon: dockerd stopped (SIGTERM: it stops the
    containers), then started again with the same command line. Returns when `docker
    info` answers again, with the seconds it was down."""
    found = _dockerd()
    assert found, "no dockerd process on this machine: the daemon cannot be restarted here"
    pid, command = found
    stopped = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    wait_for("dockerd to exit", lambda: not Path(f"/proc/{pid}").exists(), 90)
    with open("/var/log/dockerd.log", "ab") as log:
        subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    wait_for("the daemon to answer", docker_available, 90)
    return time.monotonic() - stopped


def _address(name: str, network: str) -> Optional[str]:
    state = inspect(name) or {}
    return ((state.get("NetworkSettings") or {}).get("Networks") or {}).get(network, {}).get("IPAddress")


def test_host_restart_the_stack_serves_again_and_every_slot_keeps_its_own_traffic(prod, measure):
    prod.require()
    if not daemon_restartable():
        pytest.skip("systemd runs dockerd here: set E2E_RESTART_DOCKERD=1 to let the test restart it by hand")
    live = prod.config["activeSlot"]
    assert set(prod.config["slots"]) == {"blue", "green"}, "needs both slots deployed"
    other = "green" if live == "blue" else "blue"
    missing, kept = f"prod-app-{live}-2", f"prod-app-{live}-1"
    frontend = "prod-frontend"
    replicas = [n for n in prod.stack.containers() if n.startswith("prod-app-")]
    before = {n: _address(n, frontend) for n in replicas}
    docker("stop", missing)  # and kept stopped through the restart (restart: unless-stopped)
    down = restart_docker_daemon()
    restarted = time.monotonic()
    domain = prod.config["domain"]
    wait_for("the stack to serve again", lambda: request(443, "/health?check_services=true", tls=True,
                                                          host=domain)[0] == 200, 180)
    measure("prod: host restart: serving again after the daemon answered", time.monotonic() - restarted,
            note=f"daemon down {down:.1f}s")
    wait_for("every container healthy again", lambda: not _unhealthy(prod.stack, except_=(missing,)), 120, pause=2)
    assert inspect(missing)["State"]["Running"] is False
    # PostgreSQL read its memory limit at this start (a quarter of it, from the cgroup).
    limit_mb = inspect("prod-postgres")["HostConfig"]["Memory"] // (1024 * 1024)
    assert _psql("prod", "SELECT pg_size_bytes(current_setting('shared_buffers'))") == str(limit_mb // 4 * 1024 * 1024)
    # nginx came back once, and never restart-loops while a replica is missing.
    time.sleep(5)
    nginx = inspect("prod-nginx")
    assert nginx["State"]["Running"] and nginx["RestartCount"] == 0, nginx["State"]

    replica_map = Replicas()
    replica_map.refresh()
    load = Load(prod).start()
    try:
        time.sleep(5)
        # A container of the other slot takes an address first, so the replica comes back on another one.
        docker("run", "-d", "--name", "prod-e2e-placeholder", "--network", frontend, "--entrypoint", "sleep",
               APP_1_1, "300")
        docker("start", missing)
        wait_for(f"{missing} healthy", lambda: (inspect(missing)["State"].get("Health") or {}).get("Status")
                 == "healthy", 120)
        replica_map.refresh()
        time.sleep(5)
    finally:
        records = load.stop()
        docker("rm", "-f", "prod-e2e-placeholder", check=False)
    after = {n: _address(n, frontend) for n in replicas}
    measure("prod: host restart: replicas on another address afterwards", sum(before[n] != after[n] for n in replicas),
            unit="replicas", note=f"of {len(replicas)}")
    assert after[missing] != before[missing], (before, after)
    assert not failures(records), failures(records)[:5]
    answered = {replica_map.name_of.get(r["by"]) for r in records}
    assert answered == {kept, missing}, answered  # the live slot only, the returned replica included
    assert all(replica_map.slot(r) == live for r in records)
    assert other not in {r["slot"] for r in records}


def _unhealthy(stack: Stack, except_: tuple[str, ...]) -> list[str]:
    try:
        assert_all_healthy(stack, except_)
        return []
    except AssertionError as problems:
        return [str(problems)]


def test_retiring_the_idle_slot_under_load_loses_no_request(prod, measure):
    prod.require()
    live = prod.config["activeSlot"]
    idle = "green" if live == "blue" else "blue"
    replicas = Replicas()
    replicas.refresh()
    load = Load(prod).start()
    try:
        time.sleep(3)
        retired = prod.up(f"retire {idle}", slots(prod.config, **{idle: None}))
        time.sleep(2)
    finally:
        records = load.stop()
    measure("prod: retire the idle slot, wall", retired.seconds)
    deleted = {r.name for r in retired.results if r.kind == "delete" and r.type == CONTAINER}
    assert deleted == {f"prod-app-{idle}-1", f"prod-app-{idle}-2"}
    assert not any(inspect(name) for name in deleted)
    assert len(records) >= 500 and not failures(records), failures(records)[:5]
    assert {replicas.slot(r) for r in records} == {live}
    assert [str(s) for s in prod.stack.planned(prod.config)[1]] == []
