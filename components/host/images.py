"""Images the stack builds on its Docker host from a folder of this repository.

The tag is a digest of the folder and the build args: any change makes a new
tag, and so a new container (a fixed tag would rebuild the image under the old
name and leave running containers on the old one).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

import pulumi
import pulumi_docker as docker

PROJECT_DIR = Path(__file__).resolve().parents[2]


def image_tag(context: str, build_args: Mapping[str, str]) -> str:
    """16 hex digits over every file under `context` (relative to the project) and the args."""
    source = PROJECT_DIR / context
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for key, value in sorted(build_args.items()):
        digest.update(f"{key}={value}\0".encode())
    return digest.hexdigest()[:16]


def built_image(name: str, *, repository: str, context: str, build_args: Mapping[str, str],
                opts: pulumi.ResourceOptions) -> docker.Image:
    """`repository:<image_tag>` built from `context`/Dockerfile, never pushed.

    `context` is relative to the project directory, where Pulumi runs the program,
    so state holds no local path."""
    return docker.Image(
        name,
        image_name=f"{repository}:{image_tag(context, build_args)}",
        build=docker.DockerBuildArgs(context=context, dockerfile=f"{context}/Dockerfile", args=dict(build_args)),
        skip_push=True,
        opts=opts,
    )
