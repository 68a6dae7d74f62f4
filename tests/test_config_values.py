"""The grammar of every config value that reaches nginx, a rendered file, an env
line, a host path, a URL or a command (settings/values.py), and how a refusal
reads: one line naming `shia-chatbot:<key>`, the value and what is allowed."""

from __future__ import annotations

import secrets

import pytest

import harness
from settings import values
from settings.load import ConfigError, parse

PROD = harness.stack_config("prod")
DEV = harness.stack_config("dev")

# check -> (valid values, {invalid value: fragment of the reason, or the suggestion})
GRAMMARS = {
    values.host_name: (
        ["shia-chatbot.example.org", "localhost", "a.b-c.d1", "xn--strae-oqa.de", "x" * 63 + ".org"],
        {"https://shia-chatbot.example.org/": 'not a URL; use "shia-chatbot.example.org"',
         "shia-chatbot.مثال.org": 'non-ASCII host names are refused',
         "straße.de": 'use "xn--strae-oqa.de"',  # IDNA2008 (browsers), not IDNA2003's "strasse.de"
         "shia-chatbot.例え.jp": 'use "shia-chatbot.xn--r8jz45g.jp"',
         "shia-chatbot.example.org;": "lowercase letters, digits and '-'",
         "shia chatbot.example.org": "lowercase letters, digits and '-'",
         "Shia-Chatbot.example.org": 'must be lowercase; use "shia-chatbot.example.org"',
         "shia-chatbot.example.org.": 'without the trailing dot; use "shia-chatbot.example.org"',
         "-shia.example.org": "not first or last",
         "under_score.example.org": "lowercase letters, digits and '-'",
         "x" * 64 + ".org": "1-63",
         "a..b": "dot-separated labels",
         "127.0.0.1": "the last label not all digits",
         "xn--zz.org": "not a valid A-label",
         "": "a DNS host name"}),
    values.host: (
        ["localhost", "127.0.0.1", "10.0.0.5", "smtp.example.org"],
        {"127.0.0.01": "IPv4 address", "256.0.0.1": "IPv4 address", "1.2.3": "IPv4 address",
         "*": "a DNS host name", "::1": "a DNS host name"}),
    values.host_and_port: (
        ["ghcr.io", "registry.example.org:5000", "localhost:5000", "10.0.0.5:5000"],
        {"https://ghcr.io": 'without a scheme or path; use "ghcr.io"', "ghcr.io/team": 'use "ghcr.io"',
         "ghcr.io:0": "from 1 to 65535", "ghcr.io:65536": "from 1 to 65535", "ghcr.io:": "from 1 to 65535",
         "Ghcr.io": 'use "ghcr.io"', "bücher.de:5000": 'use "xn--bcher-kva.de:5000"'}),
    values.origin: (
        ["https://shia-chatbot.example.org", "http://localhost:8080", "https://127.0.0.1:3000",
         "https://www.shia-chatbot.example.org:8443", "*", "https://*.example.org"],
        {"https://shia-chatbot.example.org/": 'no trailing slash: browsers send the origin without one; use '
                                              '"https://shia-chatbot.example.org"',
         "https://shia-chatbot.example.org/app": "no path, query or fragment",
         "https://shia-chatbot.example.org?x=1": "no path, query or fragment",
         "https://shia-chatbot.example.org:443": 'without the default port :443; use "https://shia-chatbot.example.org"',
         "http://localhost:80": "default port :80",
         "https://Shia-Chatbot.example.org": 'lowercase ASCII, as browsers send it; use "https://shia-chatbot.example.org"',
         "https://bücher.de": 'use "https://xn--bcher-kva.de"',
         "ftp://example.org": "http(s)://host[:port]", "shia-chatbot.example.org": "http(s)://host[:port]",
         "https://user:pw@example.org": "no user name or password",
         "https://exa mple.org": "a DNS host name", "https://example.org:99999": "from 1 to 65535",
         "https://a.org,https://b.org": "a DNS host name"}),
    values.url: (
        ["https://openrouter.ai/api/v1", "https://cloud.langfuse.com", "http://localhost:3000",
         "https://langfuse.internal:8443/base"],
        {"https://openrouter.ai/api/v1/": 'no trailing slash (clients append their own paths); use '
                                          '"https://openrouter.ai/api/v1"',
         "https://user:token@openrouter.ai/api/v1": "credentials do not belong in plain config",
         "https://openrouter.ai/api/v1?key=x": "query or fragment",
         "https://cloud.langfuse.com/": 'no trailing slash (clients append their own paths); use '
                                        '"https://cloud.langfuse.com"',
         "https://openrouter.ai//v1": "path segments",
         "https://OpenRouter.ai/api/v1": 'use "https://openrouter.ai/api/v1"',
         "https://openrouter.ai/api v1": "path segments",
         "openrouter.ai/api/v1": "http(s) URL", "ftp://openrouter.ai": "http(s) URL",
         "https://open;router.ai": "a DNS host name"}),
    values.email: (
        ["oncall@example.com", "noreply@shia-chatbot.example.org", "ops+alerts@example.org", "o'brien@example.org"],
        {"not-an-address": "like ops@example.org", "ops@localhost": "must have a dot",
         "ops team@example.org": "local part", "ops..team@example.org": "local part",
         "ops@bücher.de": 'use "ops@xn--bcher-kva.de"', "jörg@example.org": "SMTPUTF8",
         "ops@example.org;": "domain 'example.org;'", "@example.org": "like ops@example.org"}),
    values.login: (
        ["apikey", "AKIAIOSFODNN7EXAMPLE", "noreply@shia-chatbot.example.org", "user:with-colon"],
        {"": "printable ASCII", "two words": "without spaces", "jörg": "printable ASCII"}),
    values.registry_login: (
        ["deploy-bot", "robot$ci", "AWS", "_json_key"],
        {"user:x": "must not contain ':'", "a b": "without spaces"}),
    values.host_path: (
        ["/etc/letsencrypt", "/var/www/certbot", "/srv/tls/le.d", "/opt/my_certs-2"],
        {"etc/letsencrypt": "absolute", "/": "not the host's root", "//": "not the host's root",
         "/etc//letsencrypt": 'normalised (no', "/etc/letsencrypt/": 'use "/etc/letsencrypt"',
         "/etc/./letsencrypt": 'use "/etc/letsencrypt"', "/etc/../var/run": "'..'",
         "/etc/lets encrypt": "no spaces", "/etc/le;rm -rf": "shell characters", "/etc/le:ro": "':'",
         "/etc/$HOME": "shell characters", "/etc/lé": "letters, digits"}),
    values.aws_region: (
        ["eu-central-1", "us-east-1", "us-gov-west-1", "ap-southeast-5", "eusc-de-east-1"],
        {"EU-CENTRAL-1": 'use "eu-central-1"', "eu-central": "like eu-central-1", "Frankfurt": "like eu-central-1",
         "eu-central-1.amazonaws.com": "like eu-central-1", "eu-central-1/x": "like eu-central-1"}),
    values.image_reference: (
        ["postgres:15.10-alpine", "qdrant/qdrant:v1.12.4", "ghcr.io/shia-chatbot/app:1.0.0",
         "registry.example.org:5000/team/app:2024.10", "localhost:5000/app:dev",
         "minio/minio:RELEASE.2024-10-13T13-34-11Z", "ghcr.io/shia-chatbot/app@sha256:" + "a" * 64,
         "nginx:1.27.2-alpine@sha256:" + "0" * 64, "prometheuscommunity/postgres-exporter:v0.15.0",
         "oliver006/redis_exporter:v1.66.0-alpine", "a__b/c--d:x"],
        {"ghcr.io/shia-chatbot/app": "must carry a tag other than 'latest'",
         "qdrant/qdrant:latest": "must carry a tag other than 'latest'",
         "ghcr.io/Shia-Chatbot/app:1.0": "repository paths are lowercase",
         "nginx:1.27;rm -rf /": "must be an image reference", "nginx 1.27": "must be an image reference",
         "ghcr.io//app:1": "must be an image reference", "-app:1": "must be an image reference",
         "app:.1": "must be an image reference", "app:" + "x" * 129: "must be an image reference",
         "app@sha256:abc": "must be an image reference",
         "app@md5:" + "a" * 32: "sha256:<64 lowercase hex>",
         "app@sha256:" + "A" * 64: "sha256:<64 lowercase hex>",
         "registry.example.org/" + "a" * 250 + ":1": "must be an image reference"}),
}
VALID = [(check, value) for check, (good, _) in GRAMMARS.items() for value in good]
INVALID = [(check, value, fragment) for check, (_, bad) in GRAMMARS.items() for value, fragment in bad.items()]


@pytest.mark.parametrize("check, value", VALID, ids=[f"{c.__name__}:{v[:40]}" for c, v in VALID])
def test_a_valid_value_passes_unchanged(check, value):
    assert check(value) == value


@pytest.mark.parametrize("check, value, fragment", INVALID, ids=[f"{c.__name__}:{v[:40]}" for c, v, _ in INVALID])
def test_an_invalid_value_is_refused_with_what_is_allowed(check, value, fragment):
    with pytest.raises(values.Invalid) as refused:
        check(value)
    assert fragment in str(refused.value)
    if refused.value.suggestion is not None:
        check(refused.value.suggestion)  # what the message offers passes


CONTROL = [("a\nb", ["U+000A"]), ("a\tb", ["U+0009"]), ("a\x7fb", ["U+007F"]), ("a\u202eb", ["U+202E"]),
           ("a\u200bb", ["U+200B"]), ("a\u2028b", ["U+2028"]), ("a\x85b", ["U+0085"]), ("plain, with ünïcode", [])]


@pytest.mark.parametrize("value, codes", CONTROL, ids=[repr(v) for v, _ in CONTROL])
def test_control_and_invisible_characters_are_found(value, codes):
    assert values.control_characters(value) == codes


def refused(config: dict, stack: str = "prod", **options) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse(config, stack, **options)
    return error.value.problems


def with_(base: dict, **changes) -> dict:
    return {**base, **changes}


# (config change, the one line the program prints)
PROBLEMS = {
    "domain as a URL": (
        with_(PROD, domain="https://shia-chatbot.example.org/"),
        'shia-chatbot:domain = "https://shia-chatbot.example.org/": must be a host name, not a URL; '
        'use "shia-chatbot.example.org"'),
    "a Unicode domain": (
        with_(PROD, domain="شيعة.example.org"),
        'shia-chatbot:domain = "\\u0634\\u064a\\u0639\\u0629.example.org": non-ASCII host names are refused, '
        "so config, certificate and nginx's server_name agree byte for byte; use \"xn--ogbvp1e.example.org\""),
    "a domain with ';'": (
        with_(PROD, domain="shia-chatbot.example.org; return 200"),
        'shia-chatbot:domain = "shia-chatbot.example.org; return 200": must be ' + values.HOST_NAME_RULE),
    "an allowed host with a port": (
        with_(PROD, app={"allowedHosts": ["shia-chatbot.example.org:443"]}),
        'shia-chatbot:app.allowedHosts[0] = "shia-chatbot.example.org:443": must be ' + values.HOST_NAME_RULE),
    "an origin with a path": (
        with_(PROD, app={"corsOrigins": ["https://shia-chatbot.example.org", "https://shia-chatbot.example.org/"]}),
        'shia-chatbot:app.corsOrigins[1] = "https://shia-chatbot.example.org/": no trailing slash: browsers send '
        'the origin without one; use "https://shia-chatbot.example.org"'),
    "an http origin in prod": (
        with_(PROD, app={"corsOrigins": ["http://shia-chatbot.example.org"]}),
        'shia-chatbot:app.corsOrigins[0] = "http://shia-chatbot.example.org": must be https in prod '
        "(http origins only in dev)"),
    "a wildcard host origin in prod": (
        with_(PROD, app={"corsOrigins": ["https://*.example.org"]}),
        'shia-chatbot:app.corsOrigins[0] = "https://*.example.org": a wildcard is refused in prod (it lets any '
        "site call the API with the user's browser); list the site's https origins"),
    "a certificate directory with a space": (
        with_(PROD, tls={"certificateDir": "/etc/lets encrypt"}),
        'shia-chatbot:tls.certificateDir = "/etc/lets encrypt": path names may hold letters, digits, \'.\', '
        "'_' and '-' only (no spaces, ':', quotes or shell characters)"),
    "a webroot going up": (
        with_(PROD, tls={"webrootDir": "/var/www/../../etc"}),
        'shia-chatbot:tls.webrootDir = "/var/www/../../etc": must not contain \'..\': name the directory itself'),
    "an SMTP host as a URL": (
        with_(PROD, smtp={**PROD["smtp"], "host": "smtp://smtp.example.org"}),
        'shia-chatbot:smtp.host = "smtp://smtp.example.org": must be a host name, not a URL; use "smtp.example.org"'),
    "an SMTP user with a space": (
        with_(PROD, smtp={**PROD["smtp"], "user": "no reply"}),
        'shia-chatbot:smtp.user = "no reply": must be 1-256 printable ASCII characters without spaces'),
    "a sender that is no address": (
        with_(PROD, smtp={**PROD["smtp"], "fromEmail": "Shia Chatbot <noreply@example.org>"}),
        'shia-chatbot:smtp.fromEmail = "Shia Chatbot <noreply@example.org>": must be an e-mail address: a local '
        "part of letters, digits and !#$%&'*+/=?^_`{|}~- (dots between them, at most 64), '@' and a host name"),
    "an alert address in Unicode": (
        with_(PROD, monitoring={"alertEmail": ["oncall@bücher.de"]}),
        'shia-chatbot:monitoring.alertEmail[0] = "oncall@b\\u00fccher.de": domain \'bücher.de\': non-ASCII host '
        "names are refused, so config, certificate and nginx's server_name agree byte for byte; "
        'use "oncall@xn--bcher-kva.de"'),
    "an http OpenRouter URL in prod": (
        with_(PROD, openrouterBaseUrl="http://openrouter.ai/api/v1"),
        'shia-chatbot:openrouterBaseUrl = "http://openrouter.ai/api/v1": must be https in prod (http only in dev)'),
    "a Langfuse URL with credentials": (
        with_(PROD, langfuseHost="https://pk:sk@cloud.langfuse.com"),
        'shia-chatbot:langfuseHost = "https://pk:sk@cloud.langfuse.com": credentials do not belong in plain '
        "config; keep them in a secret"),
    "an S3 region with a typo": (
        with_(PROD, backups={"s3Region": "eu-central"}),
        'shia-chatbot:backups.s3Region = "eu-central": must be an AWS region code like eu-central-1'),
    "an app image that is no reference": (
        with_(PROD, slots={"blue": {"image": "ghcr.io/shia-chatbot/app:1.0 --privileged", "replicas": 2}}),
        'shia-chatbot:slots.blue.image = "ghcr.io/shia-chatbot/app:1.0 --privileged": must be an image reference '
        "[registry[:port]/]path[:tag][@digest], path components of lowercase letters and digits joined by "
        "'.', '_', '__' or '-'"),
    "a newline in a value": (
        with_(PROD, images={"nginx": "nginx:1.27.2-alpine\nEVIL=1"}),
        'shia-chatbot:images.nginx = "nginx:1.27.2-alpine\\nEVIL=1": control or invisible characters (U+000A) '
        "are not allowed"),
    "a newline after the host key": (
        with_(PROD, dockerHostKey=PROD["dockerHostKey"] + "\n"),
        f'shia-chatbot:dockerHostKey = "{PROD["dockerHostKey"]}\\n": control or invisible characters (U+000A) '
        "are not allowed"),
    "a bidi override in a key": (
        with_(PROD, rotation={"redisPassword\u202e": 1}),
        "shia-chatbot:rotation.redisPassword\\u202e = 1: control or invisible characters (U+202E) are not allowed"),
    "an ssh host with an option for a user": (
        with_(PROD, dockerHost="ssh://-oProxyCommand@prod.shia-chatbot.example.org"),
        'shia-chatbot:dockerHost = "ssh://-oProxyCommand@prod.shia-chatbot.example.org": allowed forms are '
        "unix:///path/docker.sock or ssh://user@host[:port]"),
    "an ssh host in capitals": (
        with_(PROD, dockerHost="ssh://deploy@Prod.shia-chatbot.example.org"),
        'shia-chatbot:dockerHost = "ssh://deploy@Prod.shia-chatbot.example.org": must be lowercase; '
        'use "prod.shia-chatbot.example.org"'),
    "an ssh port out of range": (
        with_(PROD, dockerHost="ssh://deploy@prod.shia-chatbot.example.org:70000"),
        'shia-chatbot:dockerHost = "ssh://deploy@prod.shia-chatbot.example.org:70000": port \'70000\' must be a '
        "number from 1 to 65535"),
    "a unix socket path with a space": (
        with_(PROD, dockerHost="unix:///var/run/docker sock"),
        'shia-chatbot:dockerHost = "unix:///var/run/docker sock": path names may hold letters, digits, \'.\', '
        "'_' and '-' only (no spaces, ':', quotes or shell characters)"),
}


@pytest.mark.parametrize("case", list(PROBLEMS))
def test_a_bad_value_is_one_line_naming_key_value_and_what_is_allowed(case):
    config, line = PROBLEMS[case]
    assert refused(config) == [line]


def test_dev_may_keep_local_http_and_wildcards():
    config = with_(DEV, app={"corsOrigins": ["http://localhost:8080", "*", "https://*.example.org"]},
                   openrouterBaseUrl="http://localhost:4000/v1", langfuseHost="http://localhost:3000",
                   dockerHost="tcp://127.0.0.1:2375")
    assert parse(config, "dev").app.cors_origins[1] == "*"


def test_the_committed_values_and_the_defaults_pass():
    for stack in harness.STACKS:
        assert parse(harness.stack_config(stack), stack).environment == stack


def test_a_problem_is_reported_once_and_others_still_are():
    config = with_(PROD, domain="bad domain", images={"nginx": "nginx:1\n"}, app={"logLevel": "LOUD"})
    problems = refused(config)
    assert len(problems) == 3 and sum("images.nginx" in p for p in problems) == 1
    assert all(p.startswith("shia-chatbot:") and "\n" not in p for p in problems)


def test_a_refused_value_stops_the_program_before_any_resource():
    run = harness.run("prod", with_(PROD, domain="https://shia-chatbot.example.org/"))
    assert isinstance(run.error, ConfigError)
    assert [r.type for r in run.resources] == ["pulumi:pulumi:Stack"]


@pytest.mark.parametrize("key", ["openaiApiKey", "smtpPassword", "alertWebhookUrl", "registryPassword"])
def test_a_secret_with_a_line_break_is_refused_without_showing_it(key):
    value = secrets.token_hex(16)
    run = harness.run("prod", PROD, secret_config={key: value + "\n"})
    assert isinstance(run.error, ConfigError)
    assert run.error.problems == [
        f"shia-chatbot:{key} holds control characters (U+000A; the value is not shown): a line break splits "
        "the env line or file it reaches; set it again without them"]
    assert value not in str(run.error)


def test_an_ssh_key_keeps_its_line_breaks():
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + secrets.token_hex(32) + "\n-----END OPENSSH PRIVATE KEY-----\n"
    assert harness.run("prod", PROD, secret_config={"sshPrivateKey": key}).error is None


DEV_HOSTS = {
    "tcp://127.0.0.1:2375": None,
    "tcp://localhost:2375": None,
    "tcp://127.0.0.1": "allowed forms are unix:///path/docker.sock or ssh://user@host[:port], or tcp://host:port in dev",
    "tcp://127.0.0.1:23750000": "port '23750000' must be a number from 1 to 65535",
    "unix://var/run/docker.sock": "must be an absolute host path (starting with '/')",
    "unix:///var/run/docker.sock;id": "path names may hold letters, digits, '.', '_' and '-' only",
}


@pytest.mark.parametrize("host", list(DEV_HOSTS))
def test_docker_host_forms_in_dev(host):
    expected = DEV_HOSTS[host]
    if expected is None:
        assert parse(with_(DEV, dockerHost=host), "dev").docker_host == host
    else:
        [problem] = refused(with_(DEV, dockerHost=host), "dev")
        assert problem.startswith(f'shia-chatbot:dockerHost = "{host}": {expected}')
