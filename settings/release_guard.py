"""Refuse the two routine mistakes that would cost production traffic, judged
against what this stack deployed last time (its own stack outputs):

- changing the image of the slot that is live: its replicas have fixed names and
  are replaced delete-first, so every live replica would go at once;
- switching to an image no `pulumi up` has released yet: release and switch in
  one update skip the operator's look at the released slot.

`allowLiveRelease: true` (dev's default) turns the guard off for a stack.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import pulumi

from settings.load import PROJECT, ConfigError
from settings.model import StackConfig


# The engine's own function behind StackReference (pulumi/pulumi
# pkg/resource/deploy/builtins.go): a read, which records nothing in the state.
READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"


def previous_deployment() -> Optional[dict[str, Any]]:
    """`activeSlot` and `slots` as this stack last exported them; None before its first `up`.

    Read through the engine's `readStackOutputs` function, synchronously (the
    SDK's public `pulumi.runtime.invoke`), before any resource exists, so a
    refusal touches nothing. The bare stack name means this project's stack
    on every backend; an `organization/project/stack` name is refused by a
    DIY backend in its legacy (non-project) layout.
    """
    result = pulumi.runtime.invoke(READ_STACK_OUTPUTS, {"name": pulumi.get_stack()})
    outputs = (result.value or {}).get("outputs") or {}
    active, slots = outputs.get("activeSlot"), outputs.get("slots")
    if not active or not slots:
        return None
    return {"activeSlot": active, "slots": slots}


def problems(cfg: StackConfig, previous: Optional[dict[str, Any]]) -> list[str]:
    if previous is None or cfg.allow_live_release:
        return []
    found = []
    was_live, live = previous["activeSlot"], cfg.active_slot
    deployed = {slot: spec.get("image") for slot, spec in previous["slots"].items()}
    image = cfg.slots[live].image
    escape = "or set shia-chatbot:allowLiveRelease true to accept it"
    if was_live == live and deployed.get(live) not in (None, image):
        idle = next((s for s in ("blue", "green") if s != live), "green")
        found.append(
            f"{PROJECT}:slots.{live}.image = {json.dumps(image)}: {live} is the live slot (running "
            f"{deployed[live]}); a new image replaces all its replicas at once. Release to the idle slot "
            f"(slots.{idle}.image), then switch activeSlot, {escape}")
    if was_live != live and deployed.get(live) != image:
        found.append(
            f"{PROJECT}:activeSlot = {json.dumps(live)}: {live}'s image {image} has not been released yet; "
            f"release it with activeSlot {was_live} first (pulumi up), check it, then switch, {escape}")
    return found


def check(cfg: StackConfig) -> None:
    """Raise ConfigError (one line per problem) when the update would cost live traffic."""
    found = problems(cfg, previous_deployment())
    if found:
        raise ConfigError(found)
