"""Pulls from a private registry: `registry: {server, username}` plus the secret
`registryPassword` log the docker provider in; unset, the provider is as before."""

from __future__ import annotations

import json
import secrets

import pytest

import harness
from settings.load import ConfigError

PROD = harness.stack_config("prod")
REGISTRY = {"server": "registry.example.org:5000", "username": "deploy-bot"}
PROVIDER = "pulumi:providers:docker"


def provider(run: harness.Run) -> harness.Registered:
    [docker] = run.of_type(PROVIDER)
    return docker


@pytest.mark.parametrize("stack", harness.STACKS)
def test_without_a_registry_the_provider_inputs_are_as_before(stack):
    docker = provider(harness.run(stack))
    expected = {"host": harness.stack_config(stack).get("dockerHost", "unix:///var/run/docker.sock")}
    if stack != "dev":
        expected["sshOpts"] = json.dumps(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
    assert docker.inputs == expected


def test_with_a_registry_the_provider_logs_in_and_the_password_stays_secret():
    password = secrets.token_urlsafe(24)
    run = harness.run("prod", {**PROD, "registry": REGISTRY}, secret_config={"registryPassword": password})
    assert run.error is None, run.error
    docker = provider(run)
    assert harness.is_secret(docker.inputs["registryAuth"])
    assert json.loads(harness.unwrap(docker.inputs["registryAuth"])) == [
        {"address": "registry.example.org:5000", "username": "deploy-bot", "password": password}]
    for resource in run.resources:
        for text in harness.plaintext_strings(resource.inputs):
            assert password not in text, f"registry password in plaintext in {resource.type} {resource.name}"
    # It is the provider's, not the app's.
    for container in run.containers().values():
        assert not any(password in harness.unwrap(e) for e in container.inputs.get("envs") or [])
    # Every image is pulled through that provider (a reference is "<urn>::<id>", a URN ends "::<name>").
    images = run.of_type("docker:index/remoteImage:RemoteImage")
    assert images and {i.provider.rsplit("::", 2)[1] for i in images} == {docker.name}


def test_registry_and_password_go_together():
    run = harness.run("prod", {**PROD, "registry": REGISTRY})
    assert isinstance(run.error, ConfigError)
    assert run.error.problems == [
        'shia-chatbot:registry = {"server": "registry.example.org:5000", "username": "deploy-bot"}: needs the '
        "secret shia-chatbot:registryPassword (`pulumi config set --secret registryPassword`); set both or neither"]
    run = harness.run("prod", PROD, secret_config={"registryPassword": secrets.token_hex(8)})
    assert run.error.problems == [
        "shia-chatbot:registryPassword is set without shia-chatbot:registry: set registry.server and "
        "registry.username too, or remove the password"]
    assert [r.type for r in run.resources] == ["pulumi:pulumi:Stack"]


BAD = {
    "a URL for a server": ({"server": "https://ghcr.io", "username": "bot"},
                           'shia-chatbot:registry.server = "https://ghcr.io": must be host[:port], without a '
                           'scheme or path; use "ghcr.io"'),
    "a colon in the user": ({"server": "ghcr.io", "username": "bot:token"},
                            'shia-chatbot:registry.username = "bot:token": must not contain \':\' (registries join '
                            "user:password for basic auth)"),
    "no user": ({"server": "ghcr.io"}, "shia-chatbot:registry.username is required but not set"),
    "a typo": ({"server": "ghcr.io", "username": "bot", "pasword": "x"},
               "shia-chatbot:registry.pasword is not a known setting; allowed keys: server, username"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_registry_is_refused(case):
    registry, line = BAD[case]
    run = harness.run("prod", {**PROD, "registry": registry}, secret_config={"registryPassword": secrets.token_hex(8)})
    assert isinstance(run.error, ConfigError) and run.error.problems == [line]
