"""The three projection domains: consumer group, schema, database role, web port, projection."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from samtykke.adapters.settings import Settings
from samtykke.domain.catalog import PurposeCatalog

from .analytics import AnalyticsProjection
from .customer_service import CustomerServiceProjection
from .marketing import MarketingProjection
from .projection import Projection


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    index: int  # web port offset

    def group(self, settings: Settings) -> str:
        return f"{settings.projection_group_prefix}.{self.name}"

    @property
    def role(self) -> str:
        return f"samtykke_{self.name}"

    @property
    def lock_key(self) -> int:
        """Advisory lock shared by every batch, taken exclusively by a rebuild's switch-over."""
        digest = hashlib.sha256(f"samtykke.projection.{self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def web_port(self, settings: Settings) -> int:
        return int(settings.projection_web_port_base) + self.index

    def projection(self, schema: str, settings: Settings, catalog: PurposeCatalog) -> Projection:
        if self.name == "marketing":
            return MarketingProjection(schema, catalog)
        if self.name == "analytics":
            return AnalyticsProjection(schema, catalog, settings.analytics_pseudonym_key.encode())
        return CustomerServiceProjection(schema, catalog)

    def password(self, settings: Settings) -> str:
        """This domain's own role password: one secret per projector, so none can log in as another."""
        return settings.projection_role_passwords.get(self.name, settings.projection_role_password)

    def dsn(self, settings: Settings) -> str:
        """The database URL with this domain's own login in place of the owner's."""
        parts = urlsplit(settings.database_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        login = f"{quote(self.role, safe='')}:{quote(self.password(settings), safe='')}"
        return str(parts._replace(netloc=f"{login}@{host}").geturl())


DOMAINS: dict[str, Domain] = {
    d.name: d for d in (Domain("marketing", 1), Domain("analytics", 2), Domain("customer_service", 3))
}
