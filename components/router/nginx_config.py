"""The router's nginx config as typed data, rendered from templates/router.conf.j2."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import jinja2

_HERE = Path(__file__).parent
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
APPLY_SCRIPT = (_HERE / "scripts" / "router-apply.sh").read_text()
CONF_PATH = "/etc/nginx/conf.d/default.conf"
# After a reload, old workers get this long to finish in-flight requests: longer
# than proxy_read_timeout (60s) so no proxied request is cut. Main context, so it
# is set with `nginx -g` on the container's command.
WORKER_SHUTDOWN_TIMEOUT = "65s"


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    certificate: str
    key: str


@dataclass(frozen=True, kw_only=True)
class RouterSpec:
    environment: str
    slot: str
    upstream_servers: Sequence[str]  # host:port
    server_name: str
    http_port: int
    rate_per_minute: int
    https_port: Optional[int] = None
    tls: Optional[TlsFiles] = None
    client_max_body_size: str = "25m"

    @property
    def burst(self) -> int:
        # A quarter of a minute's allowance may arrive at once (page loads fan out).
        return max(5, self.rate_per_minute // 4)

    def render(self) -> str:
        if not self.upstream_servers:
            raise ValueError("router needs at least one upstream server")
        return _TEMPLATES.get_template("router.conf.j2").render(
            environment=self.environment, slot=self.slot, upstream_servers=list(self.upstream_servers),
            server_name=self.server_name, http_port=self.http_port, https_port=self.https_port,
            tls=self.tls, rate_per_minute=self.rate_per_minute, burst=self.burst,
            client_max_body_size=self.client_max_body_size,
        )


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
