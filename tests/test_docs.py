"""README and Pulumi.yaml agree with the code they describe."""

from __future__ import annotations

import re
import typing

import pytest
import yaml

import harness
from settings import reference
from settings.secret_names import SECRET_KEYS
from settings.model import StackConfig

README = (harness.ROOT / "README.md").read_text()


def test_readme_config_reference_is_the_generated_one():
    begin, end = README.index(reference.BEGIN), README.index(reference.END)
    current = README[begin + len(reference.BEGIN):end].strip()
    assert current == reference.render(), "run: venv/bin/python -m settings.reference, paste between the markers"


def test_pulumi_yaml_declares_only_real_keys_with_their_types():
    project = yaml.safe_load((harness.ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "shia-chatbot"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    fields = {(f.alias or n): f for n, f in StackConfig.model_fields.items()}
    python_type = {"string": str, "integer": int, "boolean": bool}
    for full_key, declaration in project["config"].items():
        key = full_key.split(":", 1)[1]
        # Pulumi's project schema allows only these types.
        assert declaration["type"] in ("string", "integer", "boolean", "array"), full_key
        if key in SECRET_KEYS:
            assert declaration.get("secret") is True, full_key
            continue
        assert key in fields, f"{full_key} is declared but the program has no such key"
        annotation = fields[key].annotation
        allowed = {a for a in (annotation, *typing.get_args(annotation)) if isinstance(a, type)}
        if typing.get_origin(annotation) is typing.Literal or typing.Literal in (typing.get_origin(a) for a in typing.get_args(annotation)):
            allowed.add(str)
        assert python_type[declaration["type"]] in allowed, f"{full_key}: {declaration['type']} vs {annotation}"
        if "default" in declaration:
            assert declaration["default"] == reference.defaults_for("prod")[key], full_key
    # The CLI requires a declared key without a default on every stack: each
    # committed stack must set it, or no `pulumi up` would even start.
    for stack in harness.STACKS:
        harness.apply_project_config(stack, harness.stack_config(stack))


def test_a_declared_key_without_default_is_required_as_the_cli_requires_it():
    with pytest.raises(harness.StackFileError, match=r"^Pulumi\.prod\.yaml: shia-chatbot:activeSlot is required but "
                                                    r"not set \(Pulumi\.yaml declares it without a default"):
        harness.run("prod", {k: v for k, v in harness.stack_config("prod").items() if k != "activeSlot"})


def test_readme_commands_exist_as_make_targets():
    makefile = (harness.ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.M))
    # Every `make <target>` README shows, in code blocks, spans or tables.
    commands = set(re.findall(r"(?:^|`|&& )make ([a-z][a-z0-9-]*)", README, re.M))
    assert {"dev-up", "test", "preview", "policy", "release", "switch", "backup", "restore", "promote"} <= commands
    assert commands <= targets, commands - targets
    assert "make test" in (harness.ROOT / ".ci/run").read_text()
