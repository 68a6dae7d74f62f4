"""TEST-ONLY: the mocked plan, applied to a real Docker daemon. Nothing in the product imports this.

There is no Pulumi CLI here. This stands where `pulumi up` and its providers
would: it takes the Steps that tests/engine/plan.py derives between two mocked
plans (the same engine and provider rules tests/test_operations.py holds the
program to) and executes each one on this machine's Docker daemon the way the
provider named in tests/engine/rules.py would:

- docker Container (kreuzwerker v4.5 resourceDockerContainerCreate): the
  Engine API's create body built from the inputs (so an exec-form healthcheck
  stays exec-form, which the docker CLI cannot express), then off the default
  bridge and onto every `networksAdvanced` network with its aliases, `uploads`
  copied in as a tar at /, start, and with `wait` polled until healthy (create
  only). Update in place = ContainerUpdate (`docker update`: restart, memory,
  memory swap; every other in-place key changes the state only). Delete =
  ContainerStop with `destroyGraceSeconds` (0 when unset: SIGKILL at once),
  then a forced remove.
- Network, Volume: created with their labels; a retained volume is left on delete.
- RemoteImage: must already be on the daemon under exactly that name (no
  registry is reachable here); `keepLocally` images stay on delete.
- Image: `docker build` of the plan's context, Dockerfile and args under
  `imageName`, from the project root (pulumi runs the program there).
- command:local:Command: the step's script (`Step.script`: create, update or
  delete) run with its interpreter, stdin and environment; non-zero fails the
  apply, as it fails `pulumi up`. Remote commands are refused: apply plans
  whose dockerHost is unix://.
- RandomPassword, providers, AWS resources: nothing to do on the host (the
  mocked password is already in its dependants' inputs; AWS is not applied).

Steps run in plan order, or with `parallel=True` as the engine schedules them:
a step starts once the steps of everything it depends on are done; deletes
left for the end run after all others, dependants first. Every step's start,
end and output are kept, and `critical_path()` gives what the engine's
parallelism would take from the measured durations.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT, ROOT / "tools", ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import harness  # noqa: E402
from engine import plan  # noqa: E402
from engine.rules import (  # noqa: E402
    CONTAINER, IMAGE, LOCAL_COMMAND, NETWORK, REMOTE_COMMAND, REMOTE_IMAGE, SECRET, SERVICE, VOLUME,
)

API_VERSION = "v1.41"  # Docker 20.10's; a newer daemon accepts it too
# resourceDockerContainerUpdate sends these to ContainerUpdate; the other in-place keys change the state only.
_UPDATED_ON_HOST = ("restart", "maxRetryCount", "memory", "memorySwap", "cpuShares", "cpuSet")


class ApplyError(Exception):
    """A step failed: `pulumi up` would stop here and report it."""


def go_duration_ns(text: str) -> int:
    """Go's time.ParseDuration for the h/m/s forms the program writes ("1m0s", "10s")."""
    total, number = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    for char in text:
        if char.isdigit() or char == ".":
            number += char
        elif char in units:
            total += float(number or 0) * units[char]
            number = ""
        else:
            raise ValueError(f"not a duration: {text!r}")
    return int(total * 1e9)


# ---- the Docker Engine API, over the unix socket -----------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


@dataclass
class Daemon:
    """One Docker daemon: the CLI for most things, the Engine API where the CLI
    cannot say what the provider sends (container create)."""

    host: str = "unix:///var/run/docker.sock"

    def __post_init__(self) -> None:
        if not self.host.startswith("unix://"):
            raise ApplyError(f"the applier drives a local daemon only (unix://), not {self.host}")
        self.socket = self.host[len("unix://"):]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def cli(self, *args: str, input: Optional[bytes | str] = None, check: bool = True, timeout: float = 600,
            env: Optional[dict[str, str]] = None, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
        text = not isinstance(input, bytes)
        result = subprocess.run(["docker", *args], input=input, capture_output=True, text=text, timeout=timeout,
                                env=env or self.env, cwd=cwd)
        if check and result.returncode != 0:
            raise ApplyError(f"docker {' '.join(args[:3])} … failed ({result.returncode}): "
                             f"{_text(result.stderr)[-2000:]}")
        return result

    def api(self, method: str, path: str, body: Any = None, timeout: float = 60) -> tuple[int, Any]:
        connection = _UnixConnection(self.socket, timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            connection.request(method, f"/{API_VERSION}{path}", body=payload,
                               headers={"Content-Type": "application/json"} if payload else {})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = data.decode(errors="replace")
        return response.status, decoded

    def inspect(self, name: str) -> Optional[dict]:
        status, body = self.api("GET", f"/containers/{urllib.parse.quote(name)}/json")
        return body if status == 200 else None


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


# ---- what an apply leaves behind ------------------------------------------------

@dataclass
class StepResult:
    step: str
    urn: str
    kind: str
    type: str
    name: str
    started: float
    ended: float = 0.0
    output: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Applied:
    """One `pulumi up` (or destroy): its steps, in the order they started."""

    results: list[StepResult]
    started: float
    ended: float
    dependencies: dict[str, set[str]]  # step URN -> URNs of the steps it waited for

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def named(self, name: str, kind: Optional[str] = None) -> StepResult:
        found = [r for r in self.results if r.name == name and kind in (None, r.kind)]
        assert len(found) == 1, f"{len(found)} steps for {name!r} ({kind})"
        return found[0]

    def critical_path(self) -> tuple[float, list[str]]:
        """What the engine, running every step as soon as what it depends on is
        done, would take with these measured durations; and that chain of steps."""
        finish: dict[str, tuple[float, list[str]]] = {}
        main = [r for r in self.results if not r.details.get("at_end")]
        for result in main:
            before = [finish[d] for d in self.dependencies.get(result.urn, ()) if d in finish]
            start, chain = max(before, default=(0.0, []), key=lambda f: f[0])
            finish[result.urn] = (start + result.seconds, [*chain, result.name])
        end, chain = max(finish.values(), default=(0.0, []), key=lambda f: f[0])
        # Deletes left for the end wait for everything else.
        at_end = [r for r in self.results if r.details.get("at_end")]
        return end + sum(r.seconds for r in at_end), chain + [r.name for r in at_end]

    def summary(self) -> list[str]:
        return [f"{r.seconds:7.2f}s  {r.step}" for r in self.results]


# ---- the applier --------------------------------------------------------------

class Applier:
    """Executes Steps on one daemon and keeps the record of what exists (URN ->
    the docker object and, for containers, its id)."""

    def __init__(self, daemon: Optional[Daemon] = None, log: Callable[[str], None] = lambda line: None):
        self.daemon = daemon or Daemon()
        self.log = log
        self.record: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- scheduling ---------------------------------------------------------

    def apply(self, steps: list[plan.Step], *, parallel: bool = False) -> Applied:
        started = time.time()
        main = [s for s in steps if not self._at_end(s, steps)]
        at_end = [s for s in steps if s not in main]
        dependencies = self._dependencies(main)
        results: list[StepResult] = []
        if parallel:
            results += self._parallel(main, dependencies)
        else:
            for step in main:
                results.append(self._run(step))
        for step in at_end:
            results.append(self._run(step, at_end=True))
        return Applied(results, started, time.time(), dependencies)

    @staticmethod
    def _at_end(step: plan.Step, steps: list[plan.Step]) -> bool:
        # plan.derive appends the deletes the engine leaves for the end after every other step.
        return step.kind == "delete" and all(s.kind == "delete" for s in steps[steps.index(step):])

    @staticmethod
    def _dependencies(steps: list[plan.Step]) -> dict[str, set[str]]:
        """step URN -> the URNs of the earlier steps it must wait for. A dependency
        on a component stands for every resource under it (the SDK waits for them)."""
        urns = {s.resource.urn for s in steps}
        children: dict[str, set[str]] = {}
        for s in steps:
            children.setdefault(s.resource.parent, set()).add(s.resource.urn)

        def expand(urn: str, seen: set[str]) -> set[str]:
            if urn in seen:
                return set()
            seen.add(urn)
            found = {urn} if urn in urns else set()
            for child in children.get(urn, ()):
                found |= expand(child, seen)
            return found

        return {s.resource.urn: set().union(*(expand(d, set()) for d in s.resource.dependencies)) - {s.resource.urn}
                for s in steps}

    def _parallel(self, steps: list[plan.Step], dependencies: dict[str, set[str]]) -> list[StepResult]:
        results: list[StepResult] = []
        done: set[str] = set()
        pending = list(steps)
        failure: Optional[BaseException] = None
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            running: dict[concurrent.futures.Future, plan.Step] = {}
            while pending or running:
                if failure is None:
                    for step in [s for s in pending if dependencies[s.resource.urn] <= done]:
                        pending.remove(step)
                        running[pool.submit(self._run, step)] = step
                if not running:
                    break
                finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    step = running.pop(future)
                    try:
                        results.append(future.result())
                    except BaseException as error:  # noqa: BLE001 - the first failure stops the apply
                        failure = failure or error
                    done.add(step.resource.urn)
        if failure is not None:
            raise failure
        if pending:
            raise ApplyError(f"steps never ready (a dependency cycle?): {[str(s) for s in pending]}")
        return sorted(results, key=lambda r: r.started)

    # -- one step -------------------------------------------------------------

    def _run(self, step: plan.Step, at_end: bool = False) -> StepResult:
        resource = step.resource
        result = StepResult(str(step), resource.urn, step.kind, resource.type, resource.name, time.time())
        result.details["at_end"] = at_end
        self.log(f"{time.strftime('%H:%M:%S')} start {step}")
        try:
            handler = {
                CONTAINER: self._container, NETWORK: self._network, VOLUME: self._volume,
                REMOTE_IMAGE: self._remote_image, IMAGE: self._image, LOCAL_COMMAND: self._command,
                REMOTE_COMMAND: self._remote_command, SERVICE: self._service, SECRET: self._secret,
            }.get(resource.type, self._nothing)
            handler(step, result)
        except Exception as error:
            result.error = str(error)
            result.ended = time.time()
            self.log(f"{time.strftime('%H:%M:%S')} FAILED {step}: {error}")
            raise ApplyError(f"{step}: {error}") from error
        result.ended = time.time()
        self.log(f"{time.strftime('%H:%M:%S')} done  {step} ({result.seconds:.1f}s)")
        return result

    def _remember(self, urn: str, **what: Any) -> None:
        with self._lock:
            self.record[urn] = what

    def _forget(self, urn: str) -> None:
        with self._lock:
            self.record.pop(urn, None)

    def _nothing(self, step: plan.Step, result: StepResult) -> None:
        """RandomPassword (its value is already in its dependants' inputs), providers, AWS."""
        result.details["host"] = "nothing to do"
        if step.kind == "delete":
            self._forget(step.resource.urn)
        else:
            self._remember(step.resource.urn, type=step.resource.type, name=step.resource.name)

    # -- commands ---------------------------------------------------------------

    def _command(self, step: plan.Step, result: StepResult) -> None:
        inputs = step.resource.inputs
        script = step.script
        if script is not None and inputs.get(script) is not None:
            interpreter = inputs.get("interpreter") or ["/bin/sh", "-c"]
            env = {**os.environ, **(inputs.get("environment") or {})}
            ran = subprocess.run([*interpreter, inputs[script]], input=inputs.get("stdin"), capture_output=True,
                                 text=True, env=env, cwd=inputs.get("dir") or ROOT, timeout=900)
            result.output = ran.stdout + ran.stderr
            result.details.update(script=script, exit_code=ran.returncode, stdout=ran.stdout)
            if ran.returncode != 0:
                raise ApplyError(f"`{script}` exited {ran.returncode}:\n{result.output[-3000:]}")
        if step.kind == "delete":
            self._forget(step.resource.urn)
        else:
            self._remember(step.resource.urn, type=LOCAL_COMMAND, name=step.resource.name,
                           stdout=result.output)

    def _remote_command(self, step: plan.Step, result: StepResult) -> None:
        raise ApplyError("a remote (ssh://) command: apply plans with a unix:// dockerHost")

    # -- networks, volumes, images --------------------------------------------

    @staticmethod
    def _labels(inputs: dict[str, Any]) -> list[str]:
        return [f"{entry['label']}={entry['value']}" for entry in inputs.get("labels") or []]

    def _network(self, step: plan.Step, result: StepResult) -> None:
        old, new = step.old or step.resource, step.resource
        if step.kind in ("delete", "replace"):
            self.daemon.cli("network", "rm", old.inputs["name"], check=False)
            self._forget(old.urn)
        if step.kind in ("create", "replace"):
            inputs = new.inputs
            args = ["network", "create", "--driver", inputs.get("driver") or "bridge"]
            args += ["--internal"] if inputs.get("internal") else []
            args += ["--attachable"] if inputs.get("attachable") else []
            args += [flag for label in self._labels(inputs) for flag in ("--label", label)]
            network_id = self.daemon.cli(*args, inputs["name"]).stdout.strip()
            self._remember(new.urn, type=NETWORK, name=inputs["name"], id=network_id, plan_id=new.id)

    def _volume(self, step: plan.Step, result: StepResult) -> None:
        old, new = step.old or step.resource, step.resource
        if step.kind in ("delete", "replace"):
            if old.retain_on_delete:
                result.details["retained"] = True  # the engine never asks the provider to delete it
            else:
                self.daemon.cli("volume", "rm", old.inputs["name"])
            self._forget(old.urn)
        if step.kind in ("create", "replace"):
            inputs = new.inputs
            args = ["volume", "create", *[f for label in self._labels(inputs) for f in ("--label", label)]]
            self.daemon.cli(*args, inputs["name"])
            self._remember(new.urn, type=VOLUME, name=inputs["name"])

    def _image_id(self, name: str) -> Optional[str]:
        found = self.daemon.cli("image", "inspect", "--format", "{{.Id}}", name, check=False)
        return found.stdout.strip() if found.returncode == 0 else None

    def _remote_image(self, step: plan.Step, result: StepResult) -> None:
        old, new = step.old or step.resource, step.resource
        if step.kind == "delete" or (step.kind == "replace" and step.delete_first):
            if not old.inputs.get("keepLocally"):
                self.daemon.cli("rmi", old.inputs["name"], check=False)
            self._forget(old.urn)
        if step.kind in ("create", "replace", "update"):
            name = new.inputs["name"]
            image_id = self._image_id(name)
            if image_id is None:
                raise ApplyError(f"image {name} is not on this daemon, and no registry is reachable here: "
                                 "build it first (python3 tests/e2e/images/build.py)")
            result.details["id"] = image_id
            self._remember(new.urn, type=REMOTE_IMAGE, name=name, id=image_id)

    def _image(self, step: plan.Step, result: StepResult) -> None:
        if step.kind == "delete":
            self._forget(step.resource.urn)  # pulumi-docker leaves a built image on the host
            return
        inputs = step.resource.inputs
        build = inputs.get("build") or {}
        args = ["build", "--force-rm", "-t", inputs["imageName"]]
        if build.get("dockerfile"):
            args += ["-f", build["dockerfile"]]
        for key, value in sorted((build.get("args") or {}).items()):
            args += ["--build-arg", f"{key}={value}"]
        # The legacy builder: Docker 20.10 here has no buildx.
        built = self.daemon.cli(*args, build.get("context") or ".", env={**self.daemon.env, "DOCKER_BUILDKIT": "0"},
                                cwd=ROOT, timeout=1200)
        result.output = built.stdout[-2000:]
        image_id = self._image_id(inputs["imageName"])
        result.details["id"] = image_id
        self._remember(step.resource.urn, type=IMAGE, name=inputs["imageName"], id=image_id)

    # -- swarm services -------------------------------------------------------

    def _real_id(self, plan_id: str) -> str:
        with self._lock:
            found = [r["id"] for r in self.record.values() if r.get("plan_id") == plan_id]
        if not found:
            raise ApplyError(f"no resource applied with id {plan_id}")
        return found[0]

    def _service(self, step: plan.Step, result: StepResult) -> None:
        """resourceDockerService{Create,Update,Delete}: ServiceCreate, then with
        converge_config wait until every replica's task runs (on timeout the
        provider removes the service and fails); ServiceUpdate, then wait for the
        rolling update to complete (a rollback fails the step); ServiceRemove, then
        wait up to the stop grace period for its containers to go."""
        old, new = step.old or step.resource, step.resource
        if step.kind == "delete" or (step.kind == "replace" and step.delete_first):
            self._remove_service(old)
        if step.kind == "update":
            record = self.record[old.urn]
            status, current = self.daemon.api("GET", f"/services/{record['id']}")
            if status != 200:
                raise ApplyError(f"service {old.inputs['name']}: {current}")
            version = current["Version"]["Index"]
            status, body = self.daemon.api("POST", f"/services/{record['id']}/update?version={version}",
                                           _service_spec(new.inputs, self._real_id))
            if status != 200:
                raise ApplyError(f"service update {new.inputs['name']}: {body}")
            self._converge_update(new, record["id"], result)
            self._remember(new.urn, type=SERVICE, name=new.inputs["name"], id=record["id"], plan_id=new.id)
            return
        if step.kind in ("create", "replace"):
            status, body = self.daemon.api("POST", "/services/create", _service_spec(new.inputs, self._real_id))
            if status != 201:
                raise ApplyError(f"service create {new.inputs['name']}: {body}")
            service_id = body["ID"]
            converge = new.inputs.get("convergeConfig")
            if converge:
                try:
                    self._converge_create(new, service_id, converge, result)
                except ApplyError:
                    self.daemon.api("DELETE", f"/services/{service_id}")
                    raise
            self._remember(new.urn, type=SERVICE, name=new.inputs["name"], id=service_id, plan_id=new.id)
        if step.kind == "replace" and not step.delete_first:
            pass  # the old one is deleted at the end, as its own step

    def _secret(self, step: plan.Step, result: StepResult) -> None:
        """resource_docker_secret.go: SecretCreate (data base64); no update; SecretRemove, which the
        daemon refuses while a service uses the secret."""
        old, new = step.old or step.resource, step.resource
        # A create-first replacement keeps the URN: the old secret waits, as the
        # engine's pending delete, for the delete step at the end.
        pending = f"{old.urn}#pending-delete"
        if step.kind == "delete" or (step.kind == "replace" and step.delete_first):
            with self._lock:
                record = self.record.get(pending) or self.record.get(old.urn)
            if record:
                status, body = self.daemon.api("DELETE", f"/secrets/{record['id']}")
                if status not in (200, 204, 404):
                    raise ApplyError(f"secret {old.inputs['name']}: {body}")
                self._forget(pending if pending in self.record else old.urn)
        if step.kind == "replace" and not step.delete_first:
            with self._lock:
                self.record[pending] = self.record.get(old.urn)
        if step.kind in ("create", "replace"):
            status, body = self.daemon.api("POST", "/secrets/create",
                                           {"Name": new.inputs["name"], "Data": new.inputs["data"]})
            if status != 201:
                raise ApplyError(f"secret {new.inputs['name']}: {body}")
            self._remember(new.urn, type=SECRET, name=new.inputs["name"], id=body["ID"], plan_id=new.id)

    def _running_tasks(self, service_id: str) -> int:
        filters = urllib.parse.quote(json.dumps({"service": [service_id], "desired-state": ["running"]}))
        status, tasks = self.daemon.api("GET", f"/tasks?filters={filters}")
        return sum(1 for t in tasks or [] if t["Status"]["State"] == "running")

    def _converge_create(self, resource: plan.Resource, service_id: str, converge: dict[str, Any],
                         result: StepResult) -> None:
        replicas = int(((resource.inputs.get("mode") or {}).get("replicated") or {}).get("replicas", 1))
        time.sleep(go_duration_ns(converge.get("delay") or "7s") / 1e9)
        deadline = time.monotonic() + go_duration_ns(converge.get("timeout") or "3m") / 1e9
        while self._running_tasks(service_id) < replicas:
            if time.monotonic() > deadline:
                raise ApplyError(f"Service with ID ({service_id}) did not converge after {converge.get('timeout')}")
            time.sleep(1)
        result.details["converged_replicas"] = replicas

    def _converge_update(self, resource: plan.Resource, service_id: str, result: StepResult) -> None:
        converge = resource.inputs.get("convergeConfig")
        if not converge:
            return
        time.sleep(7)  # the provider's fixed first wait on update
        deadline = time.monotonic() + go_duration_ns(converge.get("timeout") or "3m") / 1e9
        while True:
            status, service = self.daemon.api("GET", f"/services/{service_id}")
            state = (service.get("UpdateStatus") or {}).get("State")
            if state in ("completed", None):
                result.details["update_state"] = state or "no update status"
                return
            if state in ("rollback_completed", "paused", "rollback_paused"):
                message = (service.get("UpdateStatus") or {}).get("Message", "")
                raise ApplyError(f"service {state}: {message}")
            if time.monotonic() > deadline:
                raise ApplyError(f"service update did not complete after {converge.get('timeout')}: {state}")
            time.sleep(1)

    def _remove_service(self, resource: plan.Resource) -> None:
        record = self.record.get(resource.urn)
        if record is None:
            return
        name = resource.inputs["name"]
        containers = self.daemon.cli("ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={name}",
                                     check=False).stdout.split()
        self.daemon.api("DELETE", f"/services/{record['id']}")
        grace = go_duration_ns(resource.inputs["taskSpec"]["containerSpec"].get("stopGracePeriod") or "0s") / 1e9
        deadline = time.monotonic() + grace + 10
        while containers and time.monotonic() < deadline:
            containers = [c for c in containers if self.daemon.cli("inspect", c, check=False).returncode == 0]
            time.sleep(0.5)
        self._forget(resource.urn)

    # -- containers ---------------------------------------------------------------

    def _container(self, step: plan.Step, result: StepResult) -> None:
        if step.kind == "update":
            self._update_container(step, result)
            return
        if step.kind == "delete" or (step.kind == "replace" and step.delete_first):
            self._delete_container(step.old or step.resource, result)
        if step.kind in ("create", "replace"):
            self._create_container(step.resource, result)

    def create_body(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The ContainerCreate body resourceDockerContainerCreate builds from these inputs."""
        exposed: dict[str, dict] = {}
        bindings: dict[str, list] = {}
        for port in inputs.get("ports") or []:
            key = f"{int(port['internal'])}/{port.get('protocol') or 'tcp'}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": port.get("ip") or "0.0.0.0",
                                                 "HostPort": str(int(port["external"])) if port.get("external")
                                                 else ""})
        volumes: dict[str, dict] = {}
        binds = []
        for volume in inputs.get("volumes") or []:
            source = volume.get("hostPath") or volume.get("volumeName")
            volumes[volume["containerPath"]] = {}
            if source:
                binds.append(f"{source}:{volume['containerPath']}:{'ro' if volume.get('readOnly') else 'rw'}")
        config: dict[str, Any] = {
            "Image": inputs["image"],
            "Env": inputs.get("envs") or None,
            "Cmd": inputs.get("command") or None,
            "Entrypoint": inputs.get("entrypoints") or None,
            "User": inputs.get("user") or "",
            "Labels": {entry["label"]: entry["value"] for entry in inputs.get("labels") or []},
            "ExposedPorts": exposed or None,
            "Volumes": volumes or None,
        }
        if inputs.get("stopTimeout") is not None:
            config["StopTimeout"] = int(inputs["stopTimeout"])
        if inputs.get("stopSignal"):
            config["StopSignal"] = inputs["stopSignal"]
        health = inputs.get("healthcheck")
        if health:
            config["Healthcheck"] = {
                "Test": health["tests"], "Interval": go_duration_ns(health.get("interval", "0s")),
                "Timeout": go_duration_ns(health.get("timeout", "0s")),
                "StartPeriod": go_duration_ns(health.get("startPeriod", "0s")),
                "Retries": int(health.get("retries", 0)),
            }
        memory_swap = int(inputs.get("memorySwap") or 0)
        capabilities = inputs.get("capabilities") or {}
        host = {
            "RestartPolicy": {"Name": inputs.get("restart") or "no",
                              "MaximumRetryCount": int(inputs.get("maxRetryCount") or 0)},
            "LogConfig": {"Type": inputs.get("logDriver") or "json-file", "Config": inputs.get("logOpts") or {}},
            "SecurityOpt": inputs.get("securityOpts") or None,
            "CapAdd": capabilities.get("adds") or None,
            "CapDrop": capabilities.get("drops") or None,
            "ReadonlyRootfs": bool(inputs.get("readOnly", False)),
            "Tmpfs": inputs.get("tmpfs") or None,
            "Binds": binds or None,
            "PortBindings": bindings or None,
            "Init": bool(inputs.get("init", False)),
            "Memory": int(inputs.get("memory") or 0) * 1024 * 1024,
            "MemorySwap": memory_swap * 1024 * 1024 if memory_swap > 0 else memory_swap,
        }
        if inputs.get("networkMode"):
            host["NetworkMode"] = inputs["networkMode"]
        return {**config, "HostConfig": host, "NetworkingConfig": {}}

    def _create_container(self, resource: plan.Resource, result: StepResult) -> None:
        inputs = resource.inputs
        name = inputs["name"]
        if self._image_id(inputs["image"]) is None:
            raise ApplyError(f"Unable to create container with image {inputs['image']}: not on this daemon")
        status, body = self.daemon.api("POST", f"/containers/create?name={urllib.parse.quote(name)}",
                                       self.create_body(inputs))
        if status != 201:
            raise ApplyError(f"Unable to create container {name}: {status} {body}")
        container_id = body["Id"]
        self._remember(resource.urn, type=CONTAINER, name=name, id=container_id)
        # Off the default bridge, onto each network with its aliases, before start.
        if inputs.get("networksAdvanced"):
            self.daemon.cli("network", "disconnect", "bridge", container_id, check=False)
            for network in inputs["networksAdvanced"]:
                aliases = [f"--alias={alias}" for alias in network.get("aliases") or []]
                self.daemon.cli("network", "connect", *aliases, network["name"], container_id)
        for upload in inputs.get("uploads") or []:
            self.daemon.cli("cp", "-", f"{container_id}:/", input=_upload_tar(upload))
        started = time.time()
        self.daemon.cli("start", container_id)
        time.sleep(0.1)
        state = (self.daemon.inspect(container_id) or {}).get("State", {})
        if not state.get("Running") and not state.get("Restarting"):
            # must_run: the provider removes a container that exited at once, and fails.
            logs = self.daemon.cli("logs", "--tail", "30", container_id, check=False)
            self.daemon.cli("rm", "-f", container_id, check=False)
            self._forget(resource.urn)
            raise ApplyError(f"container {name} exited immediately ({state.get('ExitCode')}):\n"
                             f"{_text(logs.stdout)}{_text(logs.stderr)}")
        if inputs.get("wait"):
            self._wait_healthy(name, container_id, float(inputs.get("waitTimeout") or 60), started, result)
        result.details["id"] = container_id

    def _wait_healthy(self, name: str, container_id: str, timeout: float, started: float,
                      result: StepResult) -> None:
        """As the provider's `wait`: poll every second until healthy, or fail at wait_timeout."""
        deadline = started + timeout
        status = ""
        while time.time() < deadline:
            state = (self.daemon.inspect(container_id) or {}).get("State", {})
            if not state.get("Health"):
                raise ApplyError(f"{name}: `wait` given, but the container has no healthcheck")
            status = state["Health"]["Status"]
            if status == "healthy":
                result.details["healthy_after"] = time.time() - started
                return
            if not state.get("Running") and not state.get("Restarting"):
                break  # the provider would poll until its timeout; the outcome is the same
            time.sleep(1)
        logs = self.daemon.cli("logs", "--tail", "40", container_id, check=False)
        probes = self.daemon.cli("inspect", "--format", "{{json .State.Health}}", container_id, check=False)
        raise ApplyError(f"container {name} failed to be in healthy state ({status or 'not running'}):\n"
                         f"{_text(logs.stdout)}{_text(logs.stderr)}\n{_text(probes.stdout)[-1500:]}")

    def _update_container(self, step: plan.Step, result: StepResult) -> None:
        inputs, name = step.resource.inputs, step.resource.inputs["name"]
        if not set(step.keys) & set(_UPDATED_ON_HOST):
            result.details["host"] = f"state only ({', '.join(step.keys)})"
            return
        args = ["update", "--restart", inputs.get("restart") or "no", "--memory", f"{int(inputs.get('memory') or 0)}m"]
        if inputs.get("memorySwap"):
            swap = int(inputs["memorySwap"])
            args += ["--memory-swap", f"{swap}m" if swap > 0 else str(swap)]
        self.daemon.cli(*args, name)
        result.details["updated"] = [k for k in step.keys if k in _UPDATED_ON_HOST]

    def _delete_container(self, old: plan.Resource, result: StepResult) -> None:
        """ContainerStop with destroy_grace_seconds (0 when unset), then a forced remove."""
        name = old.inputs["name"]
        grace = int(old.inputs.get("destroyGraceSeconds") or 0)
        before = self.daemon.inspect(name)
        started = time.time()
        if before is not None:
            self.daemon.cli("stop", "-t", str(grace), name, check=False, timeout=grace + 60)
            after = (self.daemon.inspect(name) or {}).get("State", {})
            result.details["stopped"] = {
                "name": name, "grace": grace, "seconds": time.time() - started,
                "was_running": before["State"].get("Running"), "exit_code": after.get("ExitCode"),
                "oom_killed": after.get("OOMKilled"),
                "stop_signal": before["Config"].get("StopSignal") or "SIGTERM",
            }
            # Its last words, for a post-mortem: the container goes with them.
            logs = self.daemon.cli("logs", "--tail", "30", name, check=False)
            result.output = _text(logs.stdout) + _text(logs.stderr)
            self.daemon.cli("rm", "-f", name, check=False)
        self._forget(old.urn)


def _service_spec(inputs: dict[str, Any], real_id: Callable[[str], str]) -> dict[str, Any]:
    """The ServiceSpec resourceDockerServiceCreate/Update builds from these inputs
    (kreuzwerker v4.5.0 resource_docker_service_structures.go createServiceSpec).
    real_id: the daemon's id of a resource the plan names by its mocked id."""
    task = inputs["taskSpec"]
    container = task["containerSpec"]
    health = container.get("healthcheck") or {}
    spec_container: dict[str, Any] = {
        "Image": container["image"],
        "Args": container.get("args"),
        "Env": [f"{k}={v}" for k, v in sorted((container.get("env") or {}).items())],
        "ReadOnly": bool(container.get("readOnly")),
        "CapabilityDrop": container.get("capDrops"),
        "CapabilityAdd": container.get("capAdds"),
        "StopGracePeriod": go_duration_ns(container.get("stopGracePeriod") or "0s"),
        "Secrets": [{"SecretID": real_id(s["secretId"]), "SecretName": s.get("secretName"),
                     "File": {"Name": s["fileName"], "UID": s.get("fileUid") or "0", "GID": s.get("fileGid") or "0",
                              "Mode": int(s.get("fileMode") if s.get("fileMode") is not None else 0o444)}}
                    for s in container.get("secrets") or []],
        "Mounts": [
            {"Type": m["type"], "Source": m.get("source"), "Target": m["target"], "ReadOnly": bool(m.get("readOnly")),
             **({"TmpfsOptions": {"SizeBytes": int(m["tmpfsOptions"]["sizeBytes"])}} if m.get("tmpfsOptions") else {})}
            for m in container.get("mounts") or []],
    }
    if health:
        spec_container["Healthcheck"] = {
            "Test": health.get("tests"), "Interval": go_duration_ns(health.get("interval") or "0s"),
            "Timeout": go_duration_ns(health.get("timeout") or "0s"), "Retries": int(health.get("retries") or 0),
            "StartPeriod": go_duration_ns(health.get("startPeriod") or "0s")}
    placement = task.get("placement") or {}
    restart = task.get("restartPolicy") or {}
    limits = (task.get("resources") or {}).get("limits") or {}
    log = task.get("logDriver")

    def rollout(config: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        if not config:
            return None
        return {"Parallelism": int(config.get("parallelism", 1)), "Delay": go_duration_ns(config.get("delay") or "0s"),
                "FailureAction": config.get("failureAction") or "pause",
                "Monitor": go_duration_ns(config.get("monitor") or "0s"),
                "MaxFailureRatio": float(config.get("maxFailureRatio") or 0), "Order": config.get("order") or "stop-first"}

    mode = inputs.get("mode") or {}
    endpoint = inputs.get("endpointSpec") or {}
    return {
        "Name": inputs["name"],
        "Labels": {entry["label"]: entry["value"] for entry in inputs.get("labels") or []},
        "TaskTemplate": {
            "ContainerSpec": spec_container,
            "Networks": [{"Target": real_id(n["id"]), "Aliases": n.get("aliases") or []}
                         for n in task.get("networksAdvanceds") or []],
            "Placement": {"Constraints": placement.get("constraints") or [],
                          "Preferences": [{"Spread": {"SpreadDescriptor": p}} for p in placement.get("prefs") or []]},
            "Resources": {"Limits": {"MemoryBytes": int(limits["memoryBytes"])}} if limits else {},
            "RestartPolicy": {"Condition": restart.get("condition") or "any",
                              "Delay": go_duration_ns(restart.get("delay") or "0s"),
                              "MaxAttempts": int(restart.get("maxAttempts") or 0),
                              "Window": go_duration_ns(restart.get("window") or "0s")},
            **({"LogDriver": {"Name": log["name"], "Options": log.get("options") or {}}} if log else {}),
        },
        "Mode": {"Global": {}} if mode.get("global") else {"Replicated": {"Replicas": int((mode.get("replicated") or {})
                                                                                              .get("replicas", 1))}},
        "UpdateConfig": rollout(inputs.get("updateConfig")),
        "RollbackConfig": rollout(inputs.get("rollbackConfig")),
        "EndpointSpec": {"Mode": endpoint.get("mode") or "vip",
                         "Ports": [{"TargetPort": int(p["targetPort"]), "PublishedPort": int(p.get("publishedPort") or 0),
                                    "PublishMode": p.get("publishMode") or "ingress", "Protocol": p.get("protocol") or "tcp"}
                                   for p in endpoint.get("ports") or []]},
    }


def _upload_tar(upload: dict[str, Any]) -> bytes:
    """One upload as the provider sends it to CopyToContainer at /: a tar of one file."""
    if upload.get("contentBase64"):
        data = base64.b64decode(upload["contentBase64"])
    elif upload.get("source"):
        data = Path(upload["source"]).read_bytes()
    else:
        data = (upload.get("content") or "").encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(upload["file"].lstrip("/"))
        info.size, info.mtime = len(data), int(time.time())
        info.mode = int(upload["permissions"], 8) if upload.get("permissions") else (
            0o744 if upload.get("executable") else 0o644)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# ---- a stack: its last plan, applied ------------------------------------------

class Stack:
    """One stack as `pulumi up` keeps it: the plan last applied (harness.Run) and its
    outputs, which the next run's release guard reads back."""

    def __init__(self, name: str, applier: Applier):
        self.name = name
        self.applier = applier
        self.run = plan.nothing(name)
        self.history: list[tuple[str, Applied]] = []

    def planned(self, config: dict[str, Any], secret_config: Optional[dict[str, str]] = None) -> tuple[
            harness.Run, list[plan.Step]]:
        new = harness.run(self.name, config, secret_config=secret_config,
                          previous_outputs=self.run.outputs or None)
        if new.error is not None:
            raise ApplyError(f"the program failed: {new.error}")
        return new, plan.derive(self.run, new)

    def up(self, label: str, config: dict[str, Any], *, secret_config: Optional[dict[str, str]] = None,
           parallel: bool = False) -> Applied:
        new, steps = self.planned(config, secret_config)
        applied = self.applier.apply(steps, parallel=parallel)
        self.run = new
        self.history.append((label, applied))
        return applied

    def destroy(self, *, parallel: bool = False) -> Applied:
        steps = plan.derive(self.run, plan.nothing(self.name))
        applied = self.applier.apply(steps, parallel=parallel)
        self.run = plan.nothing(self.name)
        self.history.append(("destroy", applied))
        return applied

    def containers(self) -> dict[str, plan.Resource]:
        """The plan's containers by name."""
        return {r.container_name: r for r in plan.resources(self.run).values() if r.type == CONTAINER}

    def commands(self) -> dict[str, plan.Resource]:
        return {r.name: r for r in plan.resources(self.run).values() if r.type == LOCAL_COMMAND}


__all__ = ["Applied", "Applier", "ApplyError", "Daemon", "Stack", "StepResult"]
