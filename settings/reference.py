"""README's config reference, generated from the pydantic models and the defaults table.

`python -m settings.reference` prints it; tests/test_docs.py checks README.md
holds exactly this text between its markers, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import typing
from typing import Any, Iterator

from pydantic import BaseModel

from settings.defaults import defaults_for
from settings.model import Shape, StackConfig
from settings.secret_names import SECRET_KEYS

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"
ENVS = ("dev", "stage", "prod")


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


def _rows(model: type[BaseModel], prefix: str, defaults: dict[str, dict]) -> Iterator[list[str]]:
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        nested = _nested_model(field.annotation) if typing.get_origin(field.annotation) is not dict else None
        if nested is not None:
            yield [key, "object", "", "", ""]
            yield from _rows(nested, key + ".", {e: (d.get(field.alias or name) or {}) for e, d in defaults.items()})
            continue
        cells = []
        for env in ENVS:
            value = defaults[env].get(field.alias or name, None)
            if value is None and not field.is_required() and field.default is not None:
                value = field.default if not callable(field.default_factory) else field.default_factory()
            cells.append("**required**" if value in (None, {}, []) and field.is_required() else _show(value))
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


if __name__ == "__main__":
    print(render())
