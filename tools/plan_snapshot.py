"""Every resource the program registers, as canonical JSON: the plan's shape.

    venv/bin/python tools/plan_snapshot.py STACK [--variant NAME] [--preview] [--secrets] > plan.json

One entry per RegisterResource request, sorted by URN parts (registration
order varies from run to run, the engine's diff does not see it): type, name,
parent, inputs (secret markers intact), options and the mock's id. Left out:
`sourcePosition` and `stackTrace`, the program's file and line, which the
engine records but never diffs. Two snapshots that compare equal register the
same URNs with the same inputs and options, so `pulumi up` plans no change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf import json_format

for _folder in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parent):
    sys.path.insert(0, str(_folder))
import harness  # noqa: E402

# Source locations: recorded by the engine, never part of a diff.
IGNORED = ("sourcePosition", "stackTrace")

# Config paths beyond the committed stack files, so every branch of the program is covered.
VARIANTS: dict[str, dict[str, Any]] = {
    "committed": {},
    "both-slots": {"slots": {"blue": {"image": "ghcr.io/shia-chatbot/app:1.0.0", "replicas": 2},
                             "green": {"image": "ghcr.io/shia-chatbot/app:1.1.0", "replicas": 2}},
                   "activeSlot": "green", "postgresMaxConnections": 1000},
}
SECRETS = {"openaiApiKey": "mock-openai", "smtpPassword": "mock-smtp", "alertWebhookUrl": "https://hooks.example.org/x"}


def snapshot(stack: str, variant: str = "committed", *, preview: bool = False, secrets: bool = False) -> list[dict]:
    config = {**harness.stack_config(stack), **VARIANTS[variant]}
    run = harness.run(stack, config, preview=preview, secret_config=SECRETS if secrets else None)
    if run.error is not None:
        raise SystemExit(f"{stack}/{variant}: {run.error}")
    entries = []
    for registered in run.resources:
        request = json_format.MessageToDict(registered.request)
        for key in IGNORED:
            request.pop(key, None)
        # Dependencies are sets to the engine; their order follows await order.
        request["dependencies"] = sorted(request.get("dependencies", []))
        for deps in request.get("propertyDependencies", {}).values():
            deps["urns"] = sorted(deps.get("urns", []))
        entries.append({"id": registered.id, "request": request})
    return sorted(entries, key=lambda e: (e["request"]["type"], e["request"]["name"], e["request"].get("parent", "")))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stack")
    parser.add_argument("--variant", default="committed", choices=sorted(VARIANTS))
    parser.add_argument("--preview", action="store_true")
    parser.add_argument("--secrets", action="store_true")
    args = parser.parse_args()
    json.dump(snapshot(args.stack, args.variant, preview=args.preview, secrets=args.secrets),
              sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
