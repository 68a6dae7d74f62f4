"""Secrets reach their consumers only as secrets: never plaintext in any input or export."""

from __future__ import annotations

import pytest

import harness
from components.data.redis_acl import sha256_hex
from settings.secret_names import GENERATED

PASSWORD = "random:index/randomPassword:RandomPassword"


def _generated_values(run: harness.Run) -> dict[str, str]:
    """Every generated secret: the passwords, and the backup job's AWS key (stage, prod)."""
    values = {r.name: harness.mock_password(r.name, int(r.plain("length")), r.plain("keepers"))
              for r in run.of_type(PASSWORD)}
    values.update({r.name: harness.mock_password(r.name, 40, None) for r in run.of_type("aws:iam/accessKey:AccessKey")})
    return values


@pytest.mark.parametrize("stack", harness.STACKS)
def test_every_generated_secret_is_a_random_password(stack):
    run = harness.run(stack)
    passwords = {r.name: r for r in run.of_type(PASSWORD)}
    assert set(passwords) == {f"{stack}-" + "".join(f"-{c.lower()}" if c.isupper() else c for c in k) for k in GENERATED}
    assert int(passwords[f"{stack}-secret-key"].plain("length")) == 64
    for r in passwords.values():
        assert r.plain("special") is False  # embedded in URLs
        assert "result" in r.request.additionalSecretOutputs


@pytest.mark.parametrize("stack", harness.STACKS)
def test_no_generated_secret_appears_in_plaintext_anywhere(stack):
    run = harness.run(stack)
    values = _generated_values(run)
    assert values
    consumers = 0
    for r in run.resources:
        for text in harness.plaintext_strings(r.inputs):
            for name, value in values.items():
                assert value not in text, f"{name} in plaintext in {r.type} {r.name}"
        consumers += sum(1 for e in (r.inputs.get("envs") or []) if harness.is_secret(e))
    # Each secret is used: the app replicas, worker, flower and data services carry secret envs.
    assert consumers >= 15
    # And each one does reach a consumer, marked secret: a container's environment
    # or a step's stdin (the migration's environment, the database roles step).
    secret_texts = [
        harness.unwrap(e) for r in run.resources
        for e in [*(r.inputs.get("envs") or []), *([r.inputs["stdin"]] if r.inputs.get("stdin") else [])]
        if harness.is_secret(e)
    ]
    for name, value in values.items():
        # (Redis holds the app's and exporter's passwords as SHA-256 digests.)
        assert any(value in t or sha256_hex(value) in t for t in secret_texts), f"{name} reaches no consumer"


@pytest.mark.parametrize("stack", harness.STACKS)
def test_secret_exports_stay_secret_and_others_do_not(stack):
    run = harness.run(stack)
    assert run.outputs["flowerPassword"]
    assert run.secret_outputs == {"flowerPassword"}


def test_provider_keys_reach_the_app_as_secrets():
    run = harness.run("prod", secret_config={"openaiApiKey": "sk-test-at-runtime"})
    app = run.containers()["prod-app-blue-1"]
    entries = [e for e in app.inputs["envs"] if harness.is_secret(e) and harness.unwrap(e).startswith("OPENAI_API_KEY=")]
    assert len(entries) == 1
    assert not any(t.startswith("OPENAI_API_KEY") for t in harness.plaintext_strings(app.inputs["envs"]))
    # Unset provider keys are not passed at all.
    assert not any("ANTHROPIC_API_KEY" in harness.unwrap(e) for e in app.inputs["envs"])


def test_a_provider_key_in_plaintext_config_is_refused():
    run = harness.run("prod", secret_config={"openaiApiKey": "sk-test-at-runtime"}, plaintext_secrets=True)
    assert run.error is not None
    assert "shia-chatbot:openaiApiKey is stored in plaintext" in str(run.error)
    assert "pulumi config set --secret openaiApiKey" in str(run.error)
    assert [r.type for r in run.resources] == ["pulumi:pulumi:Stack"]


def test_rotation_bumps_only_that_secret_keeper():
    base = harness.stack_config("prod")
    before = {r.name: r.plain("keepers") for r in harness.run("prod", base).of_type(PASSWORD)}
    after = {r.name: r.plain("keepers") for r in harness.run("prod", {**base, "rotation": {"redisPassword": 1}}).of_type(PASSWORD)}
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"prod-redis-password"}


def test_secret_env_is_secret_even_from_plain_parts():
    import pulumi

    from components.secrets import secret_env

    seen = {}

    @pulumi.runtime.test
    def check():
        entry = secret_env("SMTP_PASSWORD", "plain-", "parts")
        return pulumi.Output.all(entry, pulumi.Output.from_input(entry.is_secret())).apply(
            lambda v: seen.update(value=v[0], secret=v[1]))

    harness.run("dev")  # the runtime's mocks are set up by a run
    check()
    assert seen == {"value": "SMTP_PASSWORD=plain-parts", "secret": True}
