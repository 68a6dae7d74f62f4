"""Alertmanager's configuration as typed data: one route, receivers from config.

Receivers: e-mail to `monitoring.alertEmail` through the stack's `smtp`
settings (the password from the secret `smtpPassword`, read from a file), and a
webhook when the secret `alertWebhookUrl` is set. The webhook URL is written
into the config itself (Alertmanager 0.25, the amtool the tests use, has no
`url_file`), so a config with a webhook is a secret as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from pydantic import Field

from components.monitoring.prometheus import YamlModel, header
from settings.model import SmtpConfig

CONFIG_DIR = "/etc/alertmanager"
CONFIG_FILE = "alertmanager.yml"
# Absolute: Alertmanager resolves only some relative paths from its config's directory.
SMTP_PASSWORD_FILE = f"{CONFIG_DIR}/secrets/smtp-password"
RECEIVER = "ops"


class EmailConfig(YamlModel):
    to: str
    send_resolved: bool = True


class WebhookConfig(YamlModel):
    url: str
    send_resolved: bool = True


class Receiver(YamlModel):
    name: str
    email_configs: Optional[list[EmailConfig]] = None
    webhook_configs: Optional[list[WebhookConfig]] = None


class Route(YamlModel):
    receiver: str
    group_by: list[str]
    group_wait: str
    group_interval: str
    repeat_interval: str


class GlobalConfig(YamlModel):
    smtp_smarthost: str
    smtp_from: str
    smtp_auth_username: str
    smtp_auth_password_file: Optional[str] = None
    smtp_require_tls: bool = True


class AlertmanagerConfig(YamlModel):
    global_: Optional[GlobalConfig] = Field(default=None, alias="global")
    route: Route
    receivers: list[Receiver]


@dataclass(frozen=True, kw_only=True)
class AlertmanagerSpec:
    environment: str
    emails: Sequence[str]
    smtp: Optional[SmtpConfig]
    smtp_password: bool  # whether the password file is there
    webhook_url: Optional[str] = None

    def config(self) -> AlertmanagerConfig:
        smtp = None
        if self.emails:
            if self.smtp is None:
                raise ValueError("e-mail receivers need the smtp settings")
            smtp = GlobalConfig(
                smtp_smarthost=f"{self.smtp.host}:{self.smtp.port}", smtp_from=self.smtp.from_email,
                smtp_auth_username=self.smtp.user,
                smtp_auth_password_file=SMTP_PASSWORD_FILE if self.smtp_password else None,
            )
        # Without any, alerts still show in Alertmanager (the program warns).
        receiver = Receiver(
            name=RECEIVER,
            email_configs=[EmailConfig(to=address) for address in self.emails] or None,
            webhook_configs=[WebhookConfig(url=self.webhook_url)] if self.webhook_url else None,
        )
        return AlertmanagerConfig(
            global_=smtp,
            # One notification per alert name and environment; reminders every 4 h while it fires.
            route=Route(receiver=RECEIVER, group_by=["alertname", "environment"], group_wait="30s",
                        group_interval="5m", repeat_interval="4h"),
            receivers=[receiver],
        )

    def render(self) -> str:
        top = header("Alertmanager config", self.environment, "components/alertmanager_config.py")
        return top + self.config().yaml()
