"""Bad config stops the program before any resource, with one line naming key, value and what is allowed."""

from __future__ import annotations

import pytest

import harness
from settings.load import ConfigError, parse

PROD = harness.stack_config("prod")
SLOT = PROD["slots"]["blue"]


def with_(**changes):
    return {**PROD, **changes}


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvJmtRfTBm3r4sD2oE4dLkNw9H1QjWmZf7xP8yGq2cK"


def node(host: str, *roles: str) -> dict:
    return {"dockerHost": f"ssh://deploy@{host}.example.org", "hostKey": KEY, "roles": list(roles)}


# A three-node prod swarm: the manager is also the edge and the data node.
SWARM = {"m1": {**node("m1", "manager", "edge", "data"), "dockerHost": PROD["dockerHost"]},
         "a1": node("a1", "app"), "a2": node("a2", "app")}


def swarm(**nodes):
    return with_(runtime="swarm", nodes={**SWARM, **nodes})


CASES = {
    "unknown slot": (
        with_(slots={"purple": SLOT}),
        ["shia-chatbot:slots.purple", "key should be 'blue' or 'green'"],
    ),
    "active slot missing": (
        with_(activeSlot="green"),
        ['shia-chatbot:activeSlot = "green"', "must be one of the deployed slots (blue)"],
    ),
    "active slot not a slot name": (
        with_(activeSlot="red"),
        ['shia-chatbot:activeSlot = "red"', "Input should be 'blue' or 'green'"],
    ),
    "zero replicas": (
        with_(slots={"blue": {**SLOT, "replicas": 0}}),
        ["shia-chatbot:slots.blue.replicas = 0", "greater than or equal to 1"],
    ),
    "bad log level": (
        with_(app={**PROD["app"], "logLevel": "VERBOSE"}),
        ['shia-chatbot:app.logLevel = "VERBOSE"', "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"],
    ),
    "untagged app image": (
        with_(slots={"blue": {**SLOT, "image": "ghcr.io/shia-chatbot/app"}}),
        ['shia-chatbot:slots.blue.image = "ghcr.io/shia-chatbot/app"', "must carry a tag other than 'latest'"],
    ),
    "latest data image": (
        with_(images={"qdrant": "qdrant/qdrant:latest"}),
        ['shia-chatbot:images.qdrant = "qdrant/qdrant:latest"', "must carry a tag other than 'latest'"],
    ),
    "environment does not match the stack": (
        with_(environment="stage"),
        ['shia-chatbot:environment = "stage"', "stack 'prod' must be named 'stage' or start with 'stage-'"],
    ),
    "a near miss of a key": (
        with_(domian="shia-chatbot.example.org"),
        ["shia-chatbot:domian is not a known setting; did you mean domain?"],
    ),
    "a near miss inside a slot": (
        with_(slots={"blue": {"image": SLOT["image"], "replica": 2}}),
        ["shia-chatbot:slots.blue.replica is not a known setting; did you mean replicas?"],
    ),
    "a key far from any": (
        with_(smtp={"host": "smtp.example.org", "user": "u", "fromEmail": "a@example.org", "xyz": 1}),
        ["shia-chatbot:smtp.xyz is not a known setting; allowed keys: fromEmail, host, port, user"],
    ),
    # pgBackRest comes from the images' distribution release, at both ends of one repository.
    "a backup base of another Alpine release than PostgreSQL's": (
        with_(images={"backupBase": "alpine:3.21.0"}),
        ['shia-chatbot:images.backupBase = "alpine:3.21.0": must be the distribution release of '
         'shia-chatbot:images.postgres = "postgres:15.10-alpine3.20" (alpine 3.20, e.g. alpine:3.20.<patch>)'],
    ),
    "a PostgreSQL image whose tag names no release": (
        with_(images={"postgres": "postgres:15.10-alpine"}),
        ['shia-chatbot:images.backupBase = "alpine:3.20.3": must be the distribution release of '
         'shia-chatbot:images.postgres = "postgres:15.10-alpine" (a release its tag does not name; pin one'],
    ),
    "a restic key that the stack cannot rotate": (
        with_(rotation={"resticPassword": 1}),
        ["shia-chatbot:rotation.resticPassword: resticPassword is not rotated by the stack"],
    ),
    "a number as the stack file wrote it": (
        with_(hostCpus="0"),
        ["shia-chatbot:hostCpus = 0: Input should be greater than or equal to 1"],
    ),
    "unknown environment": (
        with_(environment="production"),
        ['shia-chatbot:environment = "production"', "allowed: dev, stage, prod"],
    ),
    "tcp docker host in prod": (
        with_(dockerHost="tcp://10.0.0.5:2375"),
        ['shia-chatbot:dockerHost = "tcp://10.0.0.5:2375"', "tcp:// is refused in prod", "ssh://user@host[:port]"],
    ),
    "malformed docker host": (
        with_(dockerHost="prod-host"),
        ['shia-chatbot:dockerHost = "prod-host"', "allowed forms are unix:///path/docker.sock or ssh://user@host[:port]"],
    ),
    "retention below one day": (
        with_(backups={"retentionDays": 0}),
        ["shia-chatbot:backups.retentionDays = 0", "greater than or equal to 1"],
    ),
    "unknown backup schedule": (
        with_(backups={"schedule": "weekly"}),
        ['shia-chatbot:backups.schedule = "weekly"', "'none', 'daily' or 'hourly+daily'"],
    ),
    "unknown monitoring level": (
        with_(monitoring={"level": "everything"}),
        ['shia-chatbot:monitoring.level = "everything"', "'basic', 'full' or 'full+alerts'"],
    ),
    "typo in a key": (
        with_(app={**PROD["app"], "corsOrigin": ["https://x"]}),
        ["shia-chatbot:app.corsOrigin is not a known setting; did you mean corsOrigins?"],
    ),
    "ssh docker host without its host key": (
        {k: v for k, v in PROD.items() if k != "dockerHostKey"},
        ["shia-chatbot:dockerHostKey is required for an ssh:// dockerHost",
         "ssh-keyscan -t ed25519 prod.shia-chatbot.example.org"],
    ),
    "malformed host key": (
        with_(dockerHostKey="AAAAC3NzaC1lZDI1NTE5"),
        ['shia-chatbot:dockerHostKey = "AAAAC3NzaC1lZDI1NTE5": expected \'<type> <base64>\''],
    ),
    "no domain in prod": (
        {k: v for k, v in PROD.items() if k != "domain"},
        ["shia-chatbot:domain is required in prod"],
    ),
    "no slots at all": (
        {k: v for k, v in PROD.items() if k != "slots"},
        ["shia-chatbot:slots is required but not set"],
    ),
    "pools exceed postgres connections": (
        with_(app={**PROD["app"], "dbPoolSize": 50}),
        ["shia-chatbot:postgresMaxConnections = 500", "too low for", "app.dbPoolSize"],
    ),
    "off-site copies in S3 with a level that cannot page": (
        with_(monitoring={"level": "full", "alertEmail": ["ops@example.org"]}),
        ['shia-chatbot:monitoring.level = "full": must be "full+alerts" with shia-chatbot:backups.offsite = "s3"'],
    ),
    "off-site copies in S3 with alerts but nobody to page": (
        {k: v for k, v in PROD.items() if k not in ("smtp", "monitoring")},
        ["shia-chatbot:monitoring.alertEmail is empty and the secret shia-chatbot:alertWebhookUrl is not set: "
         'with shia-chatbot:backups.offsite = "s3" alerts must reach someone'],
    ),
    "unknown runtime": (
        with_(runtime="kubernetes"), ['shia-chatbot:runtime = "kubernetes"', "Input should be 'docker' or 'swarm'"],
    ),
    "swarm without nodes": (
        with_(runtime="swarm"), ['shia-chatbot:nodes is required with shia-chatbot:runtime = "swarm"'],
    ),
    "nodes without swarm": (
        with_(nodes=SWARM), ['shia-chatbot:nodes is set but shia-chatbot:runtime = "docker"'],
    ),
    "unknown node role": (
        swarm(a2=node("a2", "app", "worker")),
        ['shia-chatbot:nodes.a2.roles[1] = "worker"', "'manager', 'edge', 'app' or 'data'"],
    ),
    "two managers": (
        swarm(a1=node("a1", "app", "manager")), ["shia-chatbot:nodes: 2 managers (a1, m1)", "odd number"],
    ),
    "no edge node": (
        with_(runtime="swarm", nodes={**SWARM, "m1": {**SWARM["m1"], "roles": ["manager", "data"]}}),
        ["shia-chatbot:nodes: no node has the role edge"],
    ),
    "two data nodes": (
        swarm(a2=node("a2", "app", "data")), ["shia-chatbot:nodes: 2 data nodes (a2, m1)", "exactly one"],
    ),
    "one app node in prod": (
        with_(runtime="swarm", nodes={k: v for k, v in SWARM.items() if k != "a2"}),
        ["shia-chatbot:nodes: 1 app node(s) (a1); prod needs at least 2"],
    ),
    "node without host key": (
        swarm(a2={**node("a2", "app"), "hostKey": None}), ["shia-chatbot:nodes.a2.hostKey is required"],
    ),
    "node over tcp": (
        swarm(a2={**node("a2", "app"), "dockerHost": "tcp://10.0.0.9:2375"}),
        ['shia-chatbot:nodes.a2.dockerHost = "tcp://10.0.0.9:2375": tcp:// is refused in prod'],
    ),
    "provider not on a manager": (
        swarm(m1={**SWARM["m1"], "dockerHost": "ssh://deploy@m1.example.org"}),
        ["shia-chatbot:dockerHost", "must be a manager's dockerHost (ssh://deploy@m1.example.org)"],
    ),
    "node name not a host name": (
        swarm(App_1=node("app-1", "app")), ['shia-chatbot:nodes.App_1 = "App_1"'],
    ),
    "unknown secret to rotate": (
        with_(rotation={"rootPassword": 1}),
        ["shia-chatbot:rotation.rootPassword: unknown secret; allowed:", "postgresPassword"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_invalid_config_is_refused_before_any_resource(name):
    config, fragments = CASES[name]
    run = harness.run("prod", config)
    assert isinstance(run.error, ConfigError), run.error
    message = str(run.error)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    # One line per problem, no traceback text.
    assert "Traceback" not in message
    assert all(line.startswith("shia-chatbot:") for line in run.error.problems)
    assert [r.type for r in run.resources] == ["pulumi:pulumi:Stack"]


def test_the_config_error_is_a_run_error_so_the_cli_prints_no_traceback():
    import pulumi

    assert issubclass(ConfigError, pulumi.RunError)


def test_tcp_docker_host_is_allowed_in_dev_only():
    dev = harness.stack_config("dev")
    assert harness.run("dev", {**dev, "dockerHost": "tcp://127.0.0.1:2375"}).error is None


def test_stack_may_be_named_after_its_environment_with_a_suffix():
    run = harness.run("prod-eu", PROD)
    assert run.error is None
    assert "prod-app-blue-1" in run.containers()


def test_stack_overrides_merge_over_the_environment_defaults():
    run = harness.run("prod", with_(app={"logLevel": "ERROR"}, slots={"blue": SLOT, "green": {**SLOT, "image": "ghcr.io/shia-chatbot/app:1.1.0"}}))
    assert run.error is None
    envs = dict(e.split("=", 1) for e in run.containers()["prod-app-blue-1"].plain("envs"))
    assert envs["LOG_LEVEL"] == "ERROR"
    assert envs["RATE_LIMIT_PER_MINUTE"] == "60"  # untouched keys keep the prod defaults
    assert "prod-app-green-2" in run.containers()


def test_a_misspelt_environment_is_named_beside_the_missing_one():
    """The CLI refuses this stack first (Pulumi.yaml declares environment); the
    program says the same when run without that check (tests, the Automation API)."""
    raw = {**{k: v for k, v in PROD.items() if k != "environment"}, "enviroment": "prod"}
    with pytest.raises(ConfigError) as refused:
        parse(raw, "prod")
    assert refused.value.problems == ["shia-chatbot:environment is required but not set: allowed: dev, stage, prod "
                                      "(shia-chatbot:enviroment is set: a typo?)"]


OFFSITE_S3 = {"stage": harness.stack_config("stage"), "prod": PROD}


@pytest.mark.parametrize("stack", list(OFFSITE_S3))
def test_off_site_copies_in_s3_may_page_by_webhook_alone(stack):
    without_mail = {k: v for k, v in OFFSITE_S3[stack].items() if k not in ("smtp", "monitoring")}
    assert harness.run(stack, without_mail).error is not None
    run = harness.run(stack, without_mail, secret_config={"alertWebhookUrl": "https://hooks.example.org/T0/B0"})
    assert run.error is None, run.error


@pytest.mark.parametrize("level", ["basic", "full"])
def test_a_level_that_cannot_page_is_allowed_without_off_site_copies_in_s3(level):
    config = {**OFFSITE_S3["stage"], "backups": {"offsite": "minio"}, "monitoring": {"level": level}}
    assert harness.run("stage", config).error is None
    assert harness.run("stage", {**config, "backups": {"offsite": "s3"}}).error is not None


def test_the_reference_says_when_alert_email_is_required():
    from settings.reference import CONDITIONS

    dev, stage, prod = CONDITIONS["monitoring.alertEmail"]
    assert dev == "—" and stage == prod
    assert "`backups.offsite` `s3`" in stage and "`alertWebhookUrl`" in stage


def test_a_three_node_prod_swarm_is_accepted():
    config = parse(swarm(), "prod")
    assert config.runtime == "swarm"
    assert {name: sorted(n.roles) for name, n in config.nodes.items()} == {
        "m1": ["data", "edge", "manager"], "a1": ["app"], "a2": ["app"]}


def test_the_runtime_is_docker_unless_set():
    assert parse(PROD, "prod").runtime == "docker" and parse(PROD, "prod").nodes == {}
