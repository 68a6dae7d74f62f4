"""Every name the stack gives a resource, from one place.

The guide's convention: `<env>_` for data (database, collection, volumes) and
`<env>-` for containers, networks and buckets (bucket names forbid `_`).
"""

from __future__ import annotations

from dataclasses import dataclass

APP_PORT = 8000
FLOWER_PORT = 5555
POSTGRES_PORT = 5432
REDIS_PORT = 6379
QDRANT_PORT = 6333
MINIO_PORT = 9000
# Every replica of a slot answers to `app-<slot>` on both networks: the name
# nginx resolves per request (Docker's DNS gives one address per replica).
SLOT_ALIAS_PREFIX = "app-"


@dataclass(frozen=True)
class Naming:
    env: str

    def container(self, service: str) -> str:
        return f"{self.env}-{service}"

    def app_container(self, slot: str, index: int) -> str:
        """Replica `index` (1-based) of a slot; names differ per slot so a new
        slot is created beside the live one, never in its place."""
        return f"{self.env}-app-{slot}-{index}"

    def app_service(self, slot: str) -> str:
        """runtime swarm: the one service that runs a slot's `replicas` tasks."""
        return f"{self.env}-app-{slot}"

    @staticmethod
    def tasks(service: str) -> str:
        """runtime swarm: the DNS name Swarm answers with one A record per running
        task of `service`, whatever its endpoint mode."""
        return f"tasks.{service}"

    @staticmethod
    def slot_alias(slot: str) -> str:
        return f"{SLOT_ALIAS_PREFIX}{slot}"

    @staticmethod
    def replica_alias(slot: str, index: int) -> str:
        return f"{SLOT_ALIAS_PREFIX}{slot}-{index}"

    def slot_container(self, service: str, slot: str) -> str:
        """Worker and Flower follow the active slot; the slot in the name lets
        the new one start before the old one is removed."""
        return f"{self.env}-{service}-{slot}"

    def volume(self, service: str, content: str = "data") -> str:
        """`<env>_<service>_data` is the promise of data that must survive (protected
        in prod, checked by the policy pack); rebuildable content names itself."""
        return f"{self.env}_{service}_{content}"

    def config_volume(self, service: str) -> str:
        return f"{self.env}_{service}_conf"

    def network(self, role: str) -> str:
        return f"{self.env}-{role}"

    def resource(self, what: str) -> str:
        """Logical name for a resource that has no physical name of its own."""
        return f"{self.env}-{what}"

    @property
    def database(self) -> str:
        return f"{self.env}_shia_chatbot"

    @property
    def database_user(self) -> str:
        return f"{self.env}_shia_chatbot"

    def database_role(self, purpose: str) -> str:
        """A login role of the app's database: `owner` (migrations), `app` (app and
        worker), `monitor` (the exporter), `backup` (pgBackRest); see DATABASE_ROLES."""
        return f"{self.env}_shia_chatbot_{purpose}"

    @property
    def flower_user(self) -> str:
        """Flower's basic-auth user (its password is a generated secret)."""
        return f"{self.env}-ops"

    @property
    def collection(self) -> str:
        return f"{self.env}_documents"

    def bucket(self, purpose: str) -> str:
        return f"{self.env}-{purpose}"

    def global_bucket(self, purpose: str) -> str:
        """An S3 bucket: names are global across AWS, so the project leads."""
        return f"shia-chatbot-{self.env}-{purpose}"
