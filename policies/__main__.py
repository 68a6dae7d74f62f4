"""The shia-chatbot policy pack, as `pulumi preview --policy-pack policies` runs it.

Only builds the pack: `PolicyPack(...)` serves the analyzer over gRPC and never
returns, so the rules live in the importable `shia_policies` package. The
engine starts this process with the stack's identity and config in its
environment; the enforcement level of each rule depends on that environment.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from shia_policies.catalog import PACK_NAME, policies_for
from shia_policies.stack import StackContext

PolicyPack(
    name=PACK_NAME,
    policies=policies_for(StackContext.from_environ()),
    # Every rule sets its own level per environment; this only covers a rule that forgot.
    enforcement_level=EnforcementLevel.MANDATORY,
)
