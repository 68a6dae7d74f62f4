"""The router's nginx config as typed data, rendered from templates/router.conf.j2.

The config names no slot and no replica: router.js (njs/) picks the slot per
request from a file the switch step writes, and nginx finds the slot's replicas
per request through Docker's DNS. So a switch, a replica's new address or a
missing replica needs no reload; only a change of the settings below does.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import jinja2

from settings.naming import APP_PORT, SLOT_ALIAS_PREFIX

_HERE = Path(__file__).parent
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
APPLY_SCRIPT = (_HERE / "scripts" / "router-apply.sh").read_text()
SWITCH_SCRIPT = (_HERE / "scripts" / "router-switch.sh").read_text()
ROUTER_JS = (_HERE / "njs" / "router.js").read_text()

CONF_DIR = "/etc/nginx/conf.d"  # a volume: the config, router.js and the slot file live on
CONF_FILE = "default.conf"
JS_FILE = "router.js"
SLOT_FILE = "active-slot"
# njs, as the official nginx image ships it (nginx-module-njs, not loaded by default).
NJS_MODULE = "modules/ngx_http_js_module.so"
# Docker's embedded DNS, in every container on a user-defined network.
DOCKER_DNS = "127.0.0.11"
# Loopback-only status server: the apply steps ask it which config and slot are served.
STATUS_PORT = 8099
STATUS_URL = f"http://127.0.0.1:{STATUS_PORT}/router"
# After a reload, old workers get this long to finish in-flight requests: longer
# than proxy_read_timeout (60s) so no proxied request is cut. Main context, so it
# is set with `nginx -g` on the container's command.
WORKER_SHUTDOWN_TIMEOUT = "65s"
_DIGEST_PLACEHOLDER = "@CONFIG_DIGEST@"


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    certificate: str
    key: str


@dataclass(frozen=True, kw_only=True)
class RouterSpec:
    """What the rendered config depends on. The resolver, app port and conf dir
    have the host's values by default; the real-nginx tests point them at a lab."""

    environment: str
    server_name: str
    http_port: int
    rate_per_minute: int
    https_port: Optional[int] = None
    tls: Optional[TlsFiles] = None
    client_max_body_size: str = "25m"
    resolver: str = DOCKER_DNS
    app_port: int = APP_PORT
    conf_dir: str = CONF_DIR
    status_port: int = STATUS_PORT

    @property
    def burst(self) -> int:
        # A quarter of a minute's allowance may arrive at once (page loads fan out).
        return max(5, self.rate_per_minute // 4)

    def render(self) -> str:
        """default.conf; it reports its own digest on the status server (a
        digest of the text with that line's placeholder, so it is stable)."""
        text = _TEMPLATES.get_template("router.conf.j2").render(
            environment=self.environment, server_name=self.server_name, http_port=self.http_port,
            https_port=self.https_port, tls=self.tls, rate_per_minute=self.rate_per_minute, burst=self.burst,
            client_max_body_size=self.client_max_body_size, resolver=self.resolver, app_port=self.app_port,
            upstream_prefix=SLOT_ALIAS_PREFIX, status_port=self.status_port, digest=_DIGEST_PLACEHOLDER,
            js_path=f"{self.conf_dir}/{JS_FILE}", slot_file=f"{self.conf_dir}/{SLOT_FILE}",
        )
        return text.replace(_DIGEST_PLACEHOLDER, digest(text))

    @property
    def config_digest(self) -> str:
        """What the status server says once this config is served."""
        rendered = self.render()
        return rendered.split("config=", 1)[1].split(" ", 1)[0]

    def files(self) -> dict[str, str]:
        return {CONF_FILE: self.render(), JS_FILE: ROUTER_JS}

    def bundle(self) -> str:
        """files() as a base64 tar, what the apply step reads on stdin. Fixed
        mtimes and owners, so the same files always give the same bundle."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, text in sorted(self.files().items()):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        return base64.b64encode(buffer.getvalue()).decode() + "\n"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
