"""The program refuses, before touching anything, an update that would cost live
traffic: a new image on the live slot, or a switch to an image never released."""

from __future__ import annotations

import pytest

import harness
from settings.load import ConfigError

PROD = harness.stack_config("prod")
V1, V2, V3 = (f"ghcr.io/shia-chatbot/app:1.{n}.0" for n in (0, 1, 2))


def config(active: str, blue: str, green: str | None = None) -> dict:
    slots = {"blue": {"image": blue, "replicas": 2}}
    if green:
        slots["green"] = {"image": green, "replicas": 2}
    return {**PROD, "activeSlot": active, "slots": slots}


def deployed(active: str, blue: str, green: str | None = None) -> dict:
    """Stack outputs as the program exports them after a deployment."""
    slots = {"blue": {"image": blue, "containers": ["prod-app-blue-1", "prod-app-blue-2"]}}
    if green:
        slots["green"] = {"image": green, "containers": ["prod-app-green-1", "prod-app-green-2"]}
    return {"activeSlot": active, "slots": slots}


ALLOWED = {
    "a new stack": (config("blue", V1), None),
    "nothing changes": (config("blue", V1), deployed("blue", V1)),
    "release to the idle slot": (config("blue", V1, V2), deployed("blue", V1, V1)),
    "a first idle slot": (config("blue", V1, V2), deployed("blue", V1)),
    "switch to the released slot": (config("green", V1, V2), deployed("blue", V1, V2)),
    "roll back": (config("blue", V1, V2), deployed("green", V1, V2)),
    "scale the live slot": ({**config("blue", V1), "slots": {"blue": {"image": V1, "replicas": 3}}},
                            deployed("blue", V1)),
}

REFUSED = {
    "new image on the live slot": (
        config("blue", V2), deployed("blue", V1),
        'shia-chatbot:slots.blue.image = "ghcr.io/shia-chatbot/app:1.1.0": blue is the live slot '
        "(running ghcr.io/shia-chatbot/app:1.0.0); a new image replaces all its replicas at once. "
        "Release to the idle slot (slots.green.image), then switch activeSlot"),
    "release and switch in one update": (
        config("green", V1, V3), deployed("blue", V1, V2),
        'shia-chatbot:activeSlot = "green": green\'s image ghcr.io/shia-chatbot/app:1.2.0 has not been '
        "released yet; release it with activeSlot blue first"),
    "switch to a slot never deployed": (
        config("green", V1, V2), deployed("blue", V1),
        'shia-chatbot:activeSlot = "green": green\'s image ghcr.io/shia-chatbot/app:1.1.0 has not been released'),
}


@pytest.mark.parametrize("case", list(ALLOWED))
def test_safe_updates_pass(case):
    cfg, previous = ALLOWED[case]
    assert harness.run("prod", cfg, previous_outputs=previous).error is None


@pytest.mark.parametrize("case", list(REFUSED))
def test_updates_that_would_cost_live_traffic_are_refused_before_any_resource(case):
    cfg, previous, message = REFUSED[case]
    run = harness.run("prod", cfg, previous_outputs=previous)
    assert isinstance(run.error, ConfigError)
    assert message in str(run.error)
    assert "allowLiveRelease" in str(run.error)
    assert [r.type for r in run.resources] == ["pulumi:pulumi:Stack"]


def test_the_escape_hatch_and_dev_allow_it():
    cfg, previous, _ = REFUSED["new image on the live slot"]
    assert harness.run("prod", {**cfg, "allowLiveRelease": True}, previous_outputs=previous).error is None
    dev = harness.stack_config("dev")
    bumped = {**dev, "slots": {"blue": {**dev["slots"]["blue"], "image": V2}}}
    assert harness.run("dev", bumped, previous_outputs=deployed("blue", V1)).error is None


def test_the_guard_reads_what_the_program_exports():
    run = harness.run("prod", config("blue", V1, V2))
    assert {"activeSlot", "slots"} <= set(run.outputs)
    again = harness.run("prod", config("blue", V1, V2), previous_outputs={k: run.outputs[k] for k in ("activeSlot", "slots")})
    assert again.error is None
    refused = harness.run("prod", config("blue", V3, V2), previous_outputs={k: run.outputs[k] for k in ("activeSlot", "slots")})
    assert isinstance(refused.error, ConfigError)


def test_a_failed_release_or_switch_is_not_recorded_as_done():
    """The engine keeps the outputs a failed update registered (pulumi/pulumi#15754);
    the two the guard reads resolve only once the step that makes them true succeeded."""
    released = config("blue", V1, V2)
    failed_release = harness.run("prod", released, previous_outputs=deployed("blue", V1), failing={"prod-app-green-smoke"})
    assert failed_release.error is not None
    assert "slots" not in failed_release.outputs and failed_release.outputs["activeSlot"] == "blue"
    failed_switch = harness.run("prod", config("green", V1, V2), previous_outputs=deployed("blue", V1, V2),
                                failing={"prod-router-switch"})
    assert failed_switch.error is not None
    assert "activeSlot" not in failed_switch.outputs
    assert failed_switch.outputs["slots"]["green"]["image"] == V2
    # And when the steps succeed, both are recorded.
    done = harness.run("prod", config("green", V1, V2), previous_outputs=deployed("blue", V1, V2))
    assert done.outputs["activeSlot"] == "green" and done.outputs["slots"]["green"]["image"] == V2


def test_the_guard_reads_this_stacks_outputs_by_its_bare_name(monkeypatch):
    """`organization/project/stack` is refused by a DIY backend in its legacy layout."""
    import pulumi
    from settings import release_guard
    calls = []
    monkeypatch.setattr(pulumi.runtime, "invoke", lambda token, args: calls.append((token, args)) or
                        type("Result", (), {"value": {"outputs": {}}})())
    monkeypatch.setattr(pulumi, "get_stack", lambda: "prod-eu")
    assert release_guard.previous_deployment() is None
    assert calls == [("pulumi:pulumi:readStackOutputs", {"name": "prod-eu"})]
