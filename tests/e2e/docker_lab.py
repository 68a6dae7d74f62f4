"""Containers, networks and volumes for the real-engine tests, through the docker CLI.

Everything a Lab makes is named `<prefix>-…` and labelled
org.shia-chatbot.e2e.run=<run id>, and `cleanup()` removes it all by that
label. No test talks to a container address from the host: clients run in
containers on the same networks (`docker exec`), so all traffic stays inside
the networks the test made.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shlex
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional, Sequence

RUN_LABEL = "org.shia-chatbot.e2e.run"


def docker_available() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def password(length: int = 24) -> str:
    """Letters and digits only: what the stack's generated secrets look like."""
    return secrets.token_hex(length // 2)


def docker(*args: str, check: bool = True, input: Optional[str | bytes] = None, timeout: float = 300,
           env: Optional[dict] = None) -> subprocess.CompletedProcess:
    text = not isinstance(input, bytes)
    result = subprocess.run(["docker", *args], capture_output=True, text=text, input=input, timeout=timeout,
                            env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


@dataclass
class Health:
    """A healthcheck as the program declares it (components/), but probed every second.

    The docker CLI takes the shell form only: an exec-form test (["CMD", …]) runs
    here through the image's /bin/sh, which every one of our images has."""

    test: Sequence[str]
    shell: bool = False
    retries: int = 60
    timeout: str = "5s"

    def flags(self) -> list[str]:
        command = self.test[0] if self.shell else shlex.join(self.test)
        return ["--health-cmd", command, "--health-interval", "1s", "--health-timeout", self.timeout,
                "--health-retries", str(self.retries), "--health-start-period", "0s"]


@dataclass
class Lab:
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def prefix(self) -> str:
        return f"shia-e2e-{self.run_id}"

    def name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def _label(self) -> list[str]:
        return ["--label", f"{RUN_LABEL}={self.run_id}"]

    def network(self, what: str, internal: bool = False) -> str:
        name = self.name(what)
        docker("network", "create", *self._label(), *(["--internal"] if internal else []), name)
        return name

    def volume(self, what: str) -> str:
        name = self.name(what)
        docker("volume", "create", *self._label(), name)
        return name

    def create(self, what: str, image: str, *, command: Sequence[str] = (), env: Optional[dict] = None,
               networks: Sequence[tuple[str, Sequence[str]]] = (), volumes: Sequence[str] = (),
               health: Optional[Health] = None, entrypoint: Optional[str] = None,
               uploads: Optional[dict[str, str]] = None, extra: Sequence[str] = (), start: bool = True) -> str:
        """Create a container as the Docker provider does: the first network at
        create, the others connected before start, uploads copied in as a tar at
        /, then start. Hardened as hardened_container(): no-new-privileges."""
        name = self.name(what)
        args = ["create", "--name", name, *self._label(), "--security-opt", "no-new-privileges:true"]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        for volume in volumes:
            args += ["--volume", volume]
        if networks:
            net, aliases = networks[0]
            args += ["--network", net, *[f"--network-alias={a}" for a in aliases]]
        if health:
            args += health.flags()
        if entrypoint is not None:
            args += ["--entrypoint", entrypoint]
        docker(*args, *extra, image, *command)
        for net, aliases in networks[1:]:
            docker("network", "connect", *[f"--alias={a}" for a in aliases], net, name)
        if uploads:
            self.upload(name, uploads)
        if start:
            docker("start", name)
        return name

    @staticmethod
    def upload(container: str, files: dict[str, str]) -> None:
        """Files copied in as the provider's `uploads` do: one tar of full paths, extracted at /."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path, content in files.items():
                data = content.encode()
                info = tarfile.TarInfo(path.lstrip("/"))
                info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        docker("cp", "-", f"{container}:/", input=buffer.getvalue())

    def wait_healthy(self, container: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            state = json.loads(docker("inspect", "--format", "{{json .State}}", container).stdout)
            status = (state.get("Health") or {}).get("Status", "")
            if status == "healthy":
                return
            if not state.get("Running"):
                break
            time.sleep(0.5)
        logs = docker("logs", "--tail", "40", container, check=False)
        probes = docker("inspect", "--format", "{{json .State.Health}}", container, check=False).stdout[-1500:]
        raise AssertionError(f"{container} is not healthy ({status or 'not running'}).\nlogs:\n{logs.stdout}"
                             f"{logs.stderr}\nhealth:\n{probes}")

    def health_status(self, container: str) -> str:
        return docker("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()

    @staticmethod
    def exec(container: str, *command: str, env: Optional[dict] = None, input: Optional[str] = None,
             user: Optional[str] = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        args = ["exec", *(["-i"] if input is not None else [])]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        if user:
            args += ["-u", user]
        return docker(*args, container, *command, input=input, check=check, timeout=timeout)

    def sh(self, container: str, script: str, **kw) -> subprocess.CompletedProcess:
        return self.exec(container, "sh", "-c", script, **kw)

    def remove(self, container: str) -> None:
        docker("rm", "-f", container, check=False)

    def cleanup(self) -> None:
        label = f"label={RUN_LABEL}={self.run_id}"
        containers = docker("ps", "-aq", "--filter", label, check=False).stdout.split()
        if containers:
            docker("rm", "-f", "-v", *containers, check=False)
        for kind in ("network", "volume"):
            names = docker(kind, "ls", "-q", "--filter", label, check=False).stdout.split()
            if names:
                docker(kind, "rm", *names, check=False)

    def leftovers(self) -> list[str]:
        label = f"label={RUN_LABEL}={self.run_id}"
        found = []
        for kind in (["ps", "-aq"], ["network", "ls", "-q"], ["volume", "ls", "-q"]):
            found += docker(*kind, "--filter", label, check=False).stdout.split()
        return found


def env_file(env: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in env.items())


def host_env() -> dict[str, str]:
    """The environment for host-side scripts that call docker (the program's steps)."""
    return {k: v for k, v in os.environ.items()}
