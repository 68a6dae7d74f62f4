"""Every rule of the pack, grouped by concern, built for one stack.

The thresholds of each environment live in policies/config/<env>.json: the
pack takes them as its schema defaults, and CI passes the same file as
--policy-pack-config, so a preview with or without the file judges alike.
"""

from __future__ import annotations

import json
from pathlib import Path

from pulumi_policy import Policy

from shia_policies import (
    app_settings, credentials, docker_host, exposure, hardening, images, naming, operability, routing, storage, swarm,
)
from shia_policies.spec import Rule
from shia_policies.stack import StackContext

PACK_NAME = "shia-chatbot"
THRESHOLDS = Path(__file__).resolve().parents[1] / "config"

RULES: list[Rule] = [
    *app_settings.RULES, *images.RULES, *naming.RULES, *exposure.RULES, *operability.RULES,
    *hardening.RULES, *credentials.RULES, *storage.RULES, *routing.RULES, *docker_host.RULES, *swarm.RULES,
]


def thresholds(environment: str) -> dict:
    """policy name -> {threshold: value} for one environment."""
    return json.loads((THRESHOLDS / f"{environment}.json").read_text())


def policies_for(stack: StackContext) -> list[Policy]:
    values = thresholds(stack.environment)
    return [rule.policy(stack, values.get(rule.name, {})) for rule in RULES]
