"""The pack's swarm rules (policies/shia_policies/swarm.py) over a prod swarm's
services: the compliant plan passes, and each changed property fails its rule
with the message an operator reads."""

from __future__ import annotations

from typing import Callable

import pytest

from policy_fixtures import ENV, SWARM_NODES, Res, compliant_plan, evaluate, swarm_plan
from shia_policies.swarm import RULES

APP, POSTGRES, NGINX = f"{ENV}-app-blue", f"{ENV}-postgres", f"{ENV}-nginx"
SETTINGS = {"runtime": "swarm", "nodes": SWARM_NODES}


def task(name: str, **container) -> Callable[[dict[str, Res]], None]:
    def change(plan: dict[str, Res]) -> None:
        spec = plan[name].props["taskSpec"]
        plan[name] = plan[name].but(taskSpec={**spec, "containerSpec": {**spec["containerSpec"], **container}})
    return change


def placed(name: str, constraints: list[str], prefs: list[str]) -> Callable[[dict[str, Res]], None]:
    def change(plan: dict[str, Res]) -> None:
        spec = plan[name].props["taskSpec"]
        plan[name] = plan[name].but(taskSpec={**spec, "placement": {"constraints": constraints, "prefs": prefs}})
    return change


def top(name: str, **props) -> Callable[[dict[str, Res]], None]:
    def change(plan: dict[str, Res]) -> None:
        plan[name] = plan[name].but(**props)
    return change


def nodes(**changed) -> dict:
    return {**SETTINGS, "nodes": {**SWARM_NODES, **changed}}


@pytest.mark.parametrize("rule", [r.name for r in RULES])
def test_the_compliant_swarm_passes_and_a_one_host_stack_has_nothing_to_judge(rule):
    assert evaluate(rule, swarm_plan(), settings=SETTINGS).violations == []
    assert evaluate(rule, compliant_plan()).violations == []


CASES = [
    ("swarm-app-spread", top(APP, mode={"replicated": {"replicas": 1}}), SETTINGS,
     f"{APP} runs 1; prod needs at least 2 replicas"),
    ("swarm-app-spread", placed(APP, ["node.labels.org.shia-chatbot.role.app==true"], []), SETTINGS,
     "does not spread its tasks over nodes"),
    ("swarm-app-spread", placed(APP, [], ["node.labels.org.shia-chatbot.node"]), SETTINGS, "is not placed on app nodes"),
    ("swarm-app-spread", None, nodes(a2={"dockerHost": "ssh://deploy@a2", "roles": ["edge"]}),
     "1 app node(s) in `nodes` (a1); prod needs at least 2"),
    ("swarm-data-pinned", placed(POSTGRES, [], []), SETTINGS, "is not pinned to the data node"),
    ("swarm-data-pinned", top(POSTGRES, mode={"replicated": {"replicas": 2}}), SETTINGS,
     "runs 2; a data service runs exactly one task"),
    ("swarm-data-pinned", None, nodes(a1={"dockerHost": "ssh://deploy@a1", "roles": ["app", "data"]}),
     "2 data nodes in `nodes`"),
    ("swarm-rollback-on-failure", top(APP, updateConfig={"failureAction": "pause"}), SETTINGS,
     "updateConfig.failureAction is pause"),
    ("swarm-rollback-on-failure", task(APP, healthcheck={"tests": ["NONE"]}), SETTINGS, "has no healthcheck"),
    ("swarm-secrets-as-files", task(POSTGRES, env={"POSTGRES_PASSWORD": "0123456789abcdef0123456789abcdef"}),
     SETTINGS, "gets POSTGRES_PASSWORD in its environment; its image reads POSTGRES_PASSWORD_FILE"),
    ("swarm-secrets-as-files", task(POSTGRES, secrets=[]), SETTINGS,
     "POSTGRES_PASSWORD_FILE=/run/secrets/postgres-password is not a Swarm secret mounted"),
    ("swarm-secrets-as-files", task(APP, env={"DATABASE_URL": f"postgresql://{ENV}_app:0123456789abcdef@pg/db"}),
     SETTINGS, "gets the secret DATABASE_URL in its environment"),
]


@pytest.mark.parametrize("rule, change, settings, expected", CASES, ids=[f"{c[0]}:{c[3][:40]}" for c in CASES])
def test_one_changed_property_fails_its_rule(rule, change, settings, expected):
    plan = swarm_plan()
    if change is not None:
        change(plan)
    violations = evaluate(rule, plan, settings=settings).violations
    assert any(expected in v for v in violations), violations


def test_every_swarm_rule_has_a_failing_case():
    assert {case[0] for case in CASES} == {r.name for r in RULES}


# The container rules judge a service's tasks too (policies/shia_policies/resources.py
# service_as_container): the same change to a service fails the same rule.
CONTAINER_RULE_CASES = [
    ("debug-disabled", task(APP, env={"ENVIRONMENT": "prod", "DEBUG": "true"}), "DEBUG"),
    ("capabilities-dropped", task(APP, capDrops=[]), "capabilities.drops lacks ALL"),
    ("read-only-root", task(APP, readOnly=False), "readOnly is not true"),
    ("healthcheck-and-restart", task(APP, healthcheck={"tests": ["NONE"]}), "no healthcheck"),
    ("service-authentication", task(POSTGRES, env={"POSTGRES_HOST_AUTH_METHOD": "trust"}), "trust"),
]


@pytest.mark.parametrize("rule, change, expected", CONTAINER_RULE_CASES, ids=[c[0] for c in CONTAINER_RULE_CASES])
def test_a_container_rule_judges_a_service_s_tasks(rule, change, expected):
    assert evaluate(rule, swarm_plan(), settings=SETTINGS).violations == []
    plan = swarm_plan()
    change(plan)
    violations = evaluate(rule, plan, settings=SETTINGS).violations
    assert any(expected in v for v in violations), violations
