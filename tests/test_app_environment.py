"""The app's environment in its two forms (components/app/environment.py, and
Flower's own in components/app/worker.py), under the SDK's mocks: Swarm's split
holds exactly the variables of the container's `envs`, its secrets stay secret
Outputs and none of them is in a plain entry; the `*_FILE` names the program
hands out are the ones docs/app-image.md and the stand-in image accept."""

from __future__ import annotations

import importlib.util
import re
import secrets
from typing import Any

import pulumi
import pytest

import harness
from components.app.environment import AppEnvironment
from components.app.worker import flower_variables
from components.secrets import Secrets, SecretsArgs, SwarmEnv
from settings import load
from settings.naming import Naming
from settings.secret_names import PROVIDER_KEYS

STAND_IN = harness.ROOT / "tests" / "e2e" / "images" / "app" / "src" / "app" / "secret_files.py"


def _resolve(value: Any) -> pulumi.Output:
    """[value, is_secret] of an Output, or [value, False] of a plain one."""
    if isinstance(value, pulumi.Output):
        return pulumi.Output.all(value, pulumi.Output.from_input(value.is_secret()))
    return pulumi.Output.from_input([value, False])


def _evaluated(stack: str, make) -> dict[str, Any]:
    """`make(app_environment)`'s Outputs, resolved: the program's config for
    `stack` with every provider key set (random per run)."""
    keys = {key: secrets.token_hex(16) for key in PROVIDER_KEYS}
    config = {**harness.stack_config(stack), "langfuseHost": "https://langfuse.example.org"}
    assert harness.run(stack, config, secret_config=keys).error is None  # sets the mocks and the config
    seen: dict[str, Any] = {}

    @pulumi.runtime.test
    def program():
        cfg = load.load()
        naming = Naming(cfg.environment)
        app = AppEnvironment(cfg=cfg, naming=naming,
                             secrets=Secrets(naming.resource("secrets"), SecretsArgs(naming=naming)))
        made = make(app)
        return pulumi.Output.all(**{k: _resolve(v) for k, v in _flat(made).items()}).apply(seen.update)

    program()
    return seen


def _flat(made: dict[str, Any]) -> dict[str, Any]:
    """{"envs.3": entry, "swarm.plain.0": entry, "swarm.secrets.NAME": Output, ...}"""
    out = {}
    for name, value in made.items():
        if isinstance(value, SwarmEnv):
            # Plain strings: an Output there could carry a secret into the task spec.
            assert all(isinstance(e, str) for e in value.plain), name
            out.update({f"{name}.plain.{i}": e for i, e in enumerate(value.plain)})
            out.update({f"{name}.secrets.{k}": v for k, v in value.secrets.items()})
        else:
            out.update({f"{name}.{i}": e for i, e in enumerate(value)})
    return out


def _forms(seen: dict[str, Any], name: str) -> tuple[dict, dict, dict]:
    """`name`'s container envs, Swarm's plain entries and Swarm's secrets, each
    {NAME: (value, is_secret)}."""
    def entries(prefix: str) -> dict[str, tuple[str, bool]]:
        return {k.removeprefix(prefix): tuple(v) for k, v in seen.items() if k.startswith(prefix)}

    def by_name(found: dict[str, tuple[str, bool]]) -> dict[str, tuple[str, bool]]:
        return {entry.split("=", 1)[0]: (entry.split("=", 1)[1], secret) for entry, secret in found.values()}

    return by_name(entries(f"{name}.envs.")), by_name(entries(f"{name}.swarm.plain.")), \
        entries(f"{name}.swarm.secrets.")


@pytest.fixture(scope="module", params=harness.STACKS)
def forms(request) -> dict[str, Any]:
    return _evaluated(request.param, lambda app: {
        **{f"{role}.envs": app.envs(role) for role in ("app", "owner")},
        **{f"{role}.swarm": app.swarm_envs(role) for role in ("app", "owner")},
    })


@pytest.mark.parametrize("role", ["app", "owner"])
def test_swarm_split_holds_exactly_the_variables_of_envs(forms, role):
    envs, plain, swarm_secrets = _forms(forms, role)
    assert not set(plain) & set(swarm_secrets)
    assert {**plain, **swarm_secrets} == envs  # same names, same values, same secrecy
    assert all(secret for _, secret in swarm_secrets.values())
    assert not any(secret for _, secret in plain.values())
    assert set(swarm_secrets) == {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "QDRANT_API_KEY", "MINIO_SECRET_KEY",
                                  *PROVIDER_KEYS.values()}
    assert f"_shia_chatbot_{role}:" in swarm_secrets["DATABASE_URL"][0]


@pytest.mark.parametrize("role", ["app", "owner"])
def test_no_secret_value_is_in_a_plain_entry(forms, role):
    _, plain, swarm_secrets = _forms(forms, role)
    hidden = {name: value for name, (value, _) in swarm_secrets.items()}
    # And the generated passwords inside the two URLs.
    hidden.update({f"{n} password": re.search(r":([A-Za-z0-9]{32})@", hidden[n])[1]
                   for n in ("DATABASE_URL", "REDIS_URL")})
    assert not [(name, secret) for name, (value, _) in plain.items() for secret, v in hidden.items() if v in value]


def test_minio_access_key_is_a_plain_user_name(forms):
    _, plain, _ = _forms(forms, "app")
    assert plain["MINIO_ACCESS_KEY"] == ("app", False)


def test_flower_variables_in_both_forms():
    password = secrets.token_hex(16)
    seen: dict[str, Any] = {}

    @pulumi.runtime.test
    def program():
        variables = flower_variables("prod-ops", pulumi.Output.secret(password))
        return pulumi.Output.all(**{k: _resolve(v) for k, v in _flat(
            {"flower.envs": variables.envs(), "flower.swarm": variables.swarm()}).items()}).apply(seen.update)

    harness.run("dev")  # the runtime's mocks are set up by a run
    program()
    envs, plain, swarm_secrets = _forms(seen, "flower")
    assert envs == {"FLOWER_PURGE_OFFLINE_WORKERS": ("60", False), "FLOWER_BASIC_AUTH": (f"prod-ops:{password}", True)}
    assert {**plain, **swarm_secrets} == envs and set(swarm_secrets) == {"FLOWER_BASIC_AUTH"}


def test_swarm_envs_add_up_and_refuse_a_name_twice():
    a = SwarmEnv(["A=1"], {"S": "s"})
    b = SwarmEnv(["B=2"], {"T": "t"})
    assert a + b == SwarmEnv(["A=1", "B=2"], {"S": "s", "T": "t"})
    with pytest.raises(ValueError, match="set twice: A, T"):
        a + b + SwarmEnv(["A=3"], {"T": "u"})


def _stand_in_variables() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location("app_stand_in_secret_files", STAND_IN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SECRET_VARIABLES


def test_the_file_variables_are_the_ones_the_contract_and_the_stand_in_accept(forms):
    _, _, app_secrets = _forms(forms, "app")
    handed_out = {*app_secrets, "FLOWER_BASIC_AUTH"}
    page = (harness.ROOT / "docs" / "app-image.md").read_text()
    section = page[page.index("## Secrets as files"):].split("\n## ")[0]
    documented = set(re.findall(r"`([A-Z_]+)_FILE`", section))
    assert documented == handed_out
    assert set(_stand_in_variables()) == handed_out
