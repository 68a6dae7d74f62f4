"""What a rule is: metadata, a level per environment, its thresholds, and one check.

A rule becomes a pulumi_policy Policy for one stack: the level comes from the
stack's environment, and each threshold's schema default is that
environment's value (policies/config/<env>.json), so `GetAnalyzerInfo` tells
exactly what this stack gets. A policy config file (`--policy-pack-config`)
can still override both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from shia_policies.stack import StackContext

ADVISORY = EnforcementLevel.ADVISORY
MANDATORY = EnforcementLevel.MANDATORY
DISABLED = EnforcementLevel.DISABLED


@dataclass(frozen=True)
class Levels:
    """Enforcement per environment. Prod is mandatory wherever a rule speaks of
    prod; `why` records the reason for the dev and stage choice."""

    dev: EnforcementLevel
    stage: EnforcementLevel
    prod: EnforcementLevel
    why: str

    def of(self, environment: str) -> EnforcementLevel:
        return getattr(self, environment)


@dataclass(frozen=True)
class Threshold:
    """One configurable property of a rule; its values per environment are in policies/config/."""

    description: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Check:
    """What a check gets besides the resource: the stack, and the rule's
    thresholds (the policy config the engine sent, over the defaults)."""

    stack: StackContext
    settings: Mapping[str, Any]

    @property
    def env(self) -> str:
        return self.stack.environment

    @property
    def prod(self) -> bool:
        return self.stack.environment == "prod"


Args = Union[ResourceValidationArgs, StackValidationArgs]
CheckFn = Callable[[Check, Any, ReportViolation], None]


@dataclass(frozen=True)
class Rule:
    name: str
    concern: str
    description: str
    remediation: str
    severity: Severity
    levels: Levels
    check: CheckFn
    stack_wide: bool = False
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)

    def policy(self, stack: StackContext, defaults: Mapping[str, Any]) -> Policy:
        """The policy for `stack`, with `defaults` for every threshold."""
        missing = set(self.thresholds) - set(defaults)
        if missing:
            raise ValueError(f"{self.name}: no value for {', '.join(sorted(missing))} in {stack.environment}")
        env = stack.environment

        def validate(args: Args, report: ReportViolation) -> None:
            self.check(Check(stack, self._typed({**defaults, **args.get_config()})), args, report)

        kind = StackValidationPolicy if self.stack_wide else ResourceValidationPolicy
        return kind(
            name=self.name,
            description=self.description,
            validate=validate,
            enforcement_level=self.levels.of(env),
            config_schema=self._schema(defaults),
            severity=self.severity,
            tags=[self.concern],
            remediation_steps=self.remediation,
        )

    def _typed(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Policy config crosses gRPC as a protobuf Struct, where every number is a float."""
        integers = {key for key, t in self.thresholds.items() if t.schema.get("type") == "integer"}
        return {key: int(value) if key in integers else value for key, value in settings.items()}

    def _schema(self, defaults: Mapping[str, Any]) -> PolicyConfigSchema | None:
        if not self.thresholds:
            return None
        return PolicyConfigSchema(properties={
            key: {**t.schema, "description": t.description, "default": defaults[key]}
            for key, t in self.thresholds.items()
        })
