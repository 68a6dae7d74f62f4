#!/usr/bin/env python3
"""Build the images the real-engine tests run, from nothing, on the local Docker daemon.

No registry is reachable here, so every image the plan names is built locally
under that exact name: a Debian bookworm base made with mmdebstrap, stand-ins
for the official images (tagged as settings/defaults.py IMAGES names them) and
the reference app (ghcr.io/shia-chatbot/app:1.0.0 and :1.1.0).

An image is skipped when its inputs are unchanged: the hash of its folder, its
base's hash and its build args, recorded on the image as the label
org.shia-chatbot.e2e.hash. A second run on the same daemon builds nothing.

    python3 tests/e2e/images/build.py             # build what changed, in dependency order
    python3 tests/e2e/images/build.py --list      # names, tags and state, build nothing
    python3 tests/e2e/images/build.py postgres app-1.1.0   # these (and the base they need)
    python3 tests/e2e/images/build.py --force     # rebuild all (a fresh Debian snapshot too)

Needs: the docker CLI and a daemon; mmdebstrap (apt-get install mmdebstrap)
for the base; pip on the host for the app's wheels (PyPI is not reachable from
inside `docker build` here). Python stdlib only. Exits non-zero on the first
failure, with the end of the build log.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DEFAULTS = ROOT / "settings" / "defaults.py"
LABEL = "org.shia-chatbot.e2e.hash"
BASE_TAG = "shia-e2e/debian-base:bookworm"
APP_REPOSITORY = "ghcr.io/shia-chatbot/app"
APP_VERSIONS = ("1.0.0", "1.1.0")
# Not inputs: downloaded or generated beside the sources.
IGNORED = {"wheels", "__pycache__", ".pytest_cache"}
# Wheels for the image's Python (Debian bookworm: CPython 3.11, glibc 2.36, x86_64).
WHEEL_TARGET = ["--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11.2", "--abi", "cp311",
                "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64"]

# Stand-in folder -> the key of settings/defaults.py IMAGES whose name it is built under.
STAND_INS = {
    "postgres": "postgres",
    "redis": "redis",
    "nginx": "nginx",
    "qdrant": "qdrant",
    "minio": "minio",
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "postgres-exporter": "postgresExporter",
    "redis-exporter": "redisExporter",
    "node-exporter": "nodeExporter",
}


@dataclass
class Image:
    name: str  # what build.py calls it (a folder, or folder-version for the app)
    folder: str
    tag: str
    base: Optional[str] = "debian-base"
    args: dict[str, str] = field(default_factory=dict)
    hash: str = ""


def plan_images() -> dict[str, str]:
    """settings/defaults.py IMAGES, read without importing the program."""
    tree = ast.parse(DEFAULTS.read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "IMAGES":
            return ast.literal_eval(node.value)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "IMAGES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"build.py: no IMAGES in {DEFAULTS}")


def images() -> list[Image]:
    """Every image, bases before the images built FROM them."""
    names = plan_images()
    out = [Image("debian-base", "debian-base", BASE_TAG, base=None)]
    # Alpine's stand-in: the backup image's base, and the postgres stand-in's
    # (the official one is FROM Alpine), given to it as the build arg BASE_IMAGE.
    out.append(Image("alpine", "alpine", names["backupBase"]))
    for folder, key in STAND_INS.items():
        if folder == "postgres":
            out.append(Image(folder, folder, names[key], base="alpine", args={"BASE_IMAGE": names["backupBase"]}))
        else:
            out.append(Image(folder, folder, names[key]))
    out += [Image(f"app-{v}", "app", f"{APP_REPOSITORY}:{v}", args={"APP_VERSION": v}) for v in APP_VERSIONS]
    return out


def folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in IGNORED for part in rel.parts) or not path.is_file():
            continue
        digest.update(rel.as_posix().encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")  # mode matters in an image
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def compute_hashes(all_images: list[Image]) -> None:
    by_name = {i.name: i for i in all_images}
    for image in all_images:
        digest = hashlib.sha256(folder_hash(HERE / image.folder).encode())
        if image.base:
            digest.update(b"base=" + by_name[image.base].hash.encode())
        for key, value in sorted(image.args.items()):
            digest.update(f"{key}={value}\0".encode())
        image.hash = digest.hexdigest()[:32]


def current_hash(tag: str) -> Optional[str]:
    result = subprocess.run(["docker", "image", "inspect", "--format", f'{{{{ index .Config.Labels "{LABEL}" }}}}',
                             tag], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


class BuildError(Exception):
    pass


def _fail(what: str, log: str) -> None:
    tail = "\n".join(log.splitlines()[-40:])
    raise BuildError(f"{what} failed; last lines of its log:\n{tail}")


def build_base(image: Image) -> None:
    if shutil.which("mmdebstrap") is None:
        raise BuildError("mmdebstrap is not installed (apt-get install -y mmdebstrap)")
    rootfs = subprocess.Popen(["sh", str(HERE / image.folder / "rootfs.sh")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    imported = subprocess.run(
        ["docker", "import", "--change", f"LABEL {LABEL}={image.hash}", "--change", 'CMD ["bash"]',
         "--change", "ENV LANG=C.UTF-8", "-", image.tag],
        stdin=rootfs.stdout, capture_output=True, text=True)
    rootfs.stdout.close()
    errors = rootfs.stderr.read().decode(errors="replace")
    # An mmdebstrap that failed half-way still hands docker a (broken) tar: check both.
    if rootfs.wait() != 0:
        subprocess.run(["docker", "rmi", "-f", image.tag], capture_output=True)
        _fail("mmdebstrap", errors)
    if imported.returncode != 0:
        _fail("docker import", imported.stdout + imported.stderr)


def python_with_pip() -> list[str]:
    for candidate in ([sys.executable, "-m", "pip"], [str(ROOT / "venv" / "bin" / "python"), "-m", "pip"]):
        if subprocess.run([*candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    for name in ("pip3", "pip"):
        if shutil.which(name):
            return [name]
    raise BuildError("no pip on this machine to download the app's wheels (apt-get install python3-pip)")


def download_wheels(folder: Path) -> None:
    """Fill folder/wheels from requirements.txt unless it already holds exactly that set."""
    requirements = folder / "requirements.txt"
    wheels = folder / "wheels"
    stamp = wheels / ".requirements-sha256"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir()
    result = subprocess.run([*python_with_pip(), "download", "-q", "--disable-pip-version-check", "--no-deps",
                             *WHEEL_TARGET, "-d", str(wheels), "-r", str(requirements)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        _fail("pip download of the app's wheels", result.stdout + result.stderr)
    stamp.write_text(wanted + "\n")


def build_dockerfile(image: Image, no_cache: bool) -> None:
    folder = HERE / image.folder
    if (folder / "requirements.txt").exists():
        download_wheels(folder)
    command = ["docker", "build", "--force-rm", "--label", f"{LABEL}={image.hash}", "-t", image.tag]
    for key, value in sorted(image.args.items()):
        command += ["--build-arg", f"{key}={value}"]
    if no_cache:
        command.append("--no-cache")
    # Legacy builder (Docker 20.10 here has no buildx): DOCKER_BUILDKIT=0 keeps a
    # newer CLI from asking for one.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    result = subprocess.run([*command, str(folder)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        _fail(f"docker build of {image.tag}", result.stdout + result.stderr)


def size_of(tag: str) -> str:
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True,
                            text=True)
    return f"{int(result.stdout.strip()) / 1e6:.0f} MB" if result.returncode == 0 else "?"


def select(all_images: list[Image], wanted: list[str]) -> list[Image]:
    """The wanted images and the bases they are built FROM, in build order."""
    if not wanted:
        return all_images
    by_name = {i.name: i for i in all_images}
    unknown = [w for w in wanted if w not in by_name and w != "app"]
    if unknown:
        raise SystemExit(f"build.py: unknown image(s) {unknown}; known: {sorted(by_name)} (or app)")
    names = set()
    for w in wanted:
        for image in all_images:
            if image.name == w or (w == "app" and image.folder == "app"):
                names.add(image.name)
                if image.base:
                    names.add(image.base)
    return [i for i in all_images if i.name in names]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="images to build (default: all); their base comes along")
    parser.add_argument("--force", action="store_true", help="rebuild even when the hash label matches")
    parser.add_argument("--no-cache", action="store_true", help="pass --no-cache to docker build")
    parser.add_argument("--list", action="store_true", help="show each image's tag and state; build nothing")
    args = parser.parse_args(argv)

    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        print("build.py: no Docker daemon answers `docker info`", file=sys.stderr)
        return 2
    all_images = images()
    compute_hashes(all_images)
    chosen = select(all_images, args.names)
    started = time.monotonic()
    for image in chosen:
        up_to_date = current_hash(image.tag) == image.hash
        if args.list:
            print(f"{'cached' if up_to_date else 'stale ':6}  {image.name:18} {image.tag}")
            continue
        t0 = time.monotonic()
        if up_to_date and not args.force:
            print(f"cached  {image.tag:45} {time.monotonic() - t0:6.1f}s", flush=True)
            continue
        try:
            if image.base is None:
                build_base(image)
            else:
                build_dockerfile(image, args.no_cache)
        except BuildError as e:
            print(f"FAILED  {image.tag:45} {time.monotonic() - t0:6.1f}s\n{e}", file=sys.stderr, flush=True)
            return 1
        print(f"built   {image.tag:45} {time.monotonic() - t0:6.1f}s  {size_of(image.tag)}", flush=True)
    if not args.list:
        print(f"total {time.monotonic() - started:.1f}s for {len(chosen)} image(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
