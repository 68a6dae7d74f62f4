"""The config reference in docs/configuration.md, generated from the pydantic
models and the defaults table.

`python -m settings.reference` prints it; `--write docs/configuration.md`
replaces the text between the markers (`make docs`); tests/test_docs.py checks
the file holds exactly this text, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import typing
from pathlib import Path
from typing import Any, Iterator, Optional

from pydantic import BaseModel

from settings.defaults import defaults_for
from settings.model import Shape, StackConfig
from settings.secret_names import SECRET_KEYS

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"
ENVS = ("dev", "stage", "prod")

# Requirements that tie keys together (settings/load.py `_check_relations`, and
# the optional objects whose own keys are required once the object is set):
# key -> the cell for dev, stage, prod. tests/test_docs.py proves each claim
# against the loader.
# How an entry of a map of objects is written in the table.
MAP_ENTRY = {"slots": "<slot>", "nodes": "<name>"}

CONDITIONS: dict[str, tuple[str, str, str]] = {
    "dockerHostKey": ("required for `ssh://`",) * 3,
    "nodes": ("**required** with `runtime` `swarm`: an odd number of managers, at least one edge and one app "
              "node, exactly one data node",) * 2 + (
              "**required** with `runtime` `swarm`: as in stage, and at least two app nodes",),
    "nodes.<name>.hostKey": ("required for `ssh://`",) * 3,
    "publishFlower": ("`true`; `false` with `runtime` `swarm`", "`false`", "`false`"),
    "domain": ("— (required with `tls.enabled`)", "**required**", "**required**"),
    # settings/load.py: off-site copies in S3 must page someone.
    "monitoring.alertEmail": ("—",) + ("**required** with `backups.offsite` `s3`, unless the secret "
                                       "`alertWebhookUrl` is set",) * 2,
}


def _type_name(annotation: Any, metadata: list[Any] = ()) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    shape = next((m for m in (*metadata, *getattr(annotation, "__metadata__", ())) if isinstance(m, Shape)), None)
    if shape is not None:
        return shape.name
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _type_name(inner[0]) + " (optional)" if len(inner) == 1 else " \\| ".join(map(_type_name, inner))
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map {_type_name(args[0])} → {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    return getattr(annotation, "__name__", str(annotation))


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _rows(model: type[BaseModel], prefix: str, defaults: dict[str, dict],
          optional_parent: Optional[str] = None) -> Iterator[list[str]]:
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        if typing.get_origin(field.annotation) is dict and _nested_model(typing.get_args(field.annotation)[1]):
            # A map of objects (slots): the map, then the keys of each entry.
            placeholder = MAP_ENTRY.get(key, "<name>")
            yield [key, _type_name(field.annotation, field.metadata),
                   *CONDITIONS.get(key, ["**required**" if field.is_required() else "—"] * len(ENVS))]
            yield from _rows(_nested_model(typing.get_args(field.annotation)[1]), f"{key}.{placeholder}.",
                             {e: {} for e in defaults}, optional_parent=f"{key}.{placeholder}")
            continue
        nested = _nested_model(field.annotation) if typing.get_origin(field.annotation) is not dict else None
        if nested is not None:
            optional = None if field.is_required() else key
            yield [key, "object" + (" (optional)" if optional else ""), "", "", ""]
            yield from _rows(nested, key + ".", {e: (d.get(field.alias or name) or {}) for e, d in defaults.items()},
                             optional_parent=optional or optional_parent)
            continue
        if key in CONDITIONS:
            yield [key, _type_name(field.annotation, field.metadata).removesuffix(" (optional)"), *CONDITIONS[key]]
            continue
        cells = []
        for env in ENVS:
            value = defaults[env].get(field.alias or name, None)
            if value is None and not field.is_required() and field.default is not None:
                value = field.default if not callable(field.default_factory) else field.default_factory()
            if value in (None, {}, []) and field.is_required():
                cells.append(f"required in `{optional_parent}`" if optional_parent else "**required**")
            else:
                cells.append(_show(value))
        yield [key, _type_name(field.annotation, field.metadata), *cells]


def _show(value: Any) -> str:
    if value is None or value == {} or value == []:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return "`" + text.replace("|", "\\|") + "`"


def render() -> str:
    defaults = {env: defaults_for(env) for env in ENVS}
    lines = [
        "| key (`shia-chatbot:`…) | type | dev default | stage default | prod default |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join([f"`{r[0]}`", *r[1:]]) + " |" for r in _rows(StackConfig, "", defaults)]
    lines += [f"| `{key}` | secret string (optional) | — | — | — |" for key in SECRET_KEYS]
    return "\n".join(lines)


def write(path: Path) -> None:
    """Replace the text between BEGIN and END in `path` with render()."""
    text = path.read_text()
    begin, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:begin] + "\n" + render() + "\n" + text[end:])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Print, or write into a file, the config reference.")
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the text between the markers in FILE")
    args = parser.parse_args()
    if args.write:
        write(args.write)
    else:
        print(render())
