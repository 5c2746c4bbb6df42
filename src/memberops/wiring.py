"""Assembly: build the services from settings, for the API, the CLI and the tests alike."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from memberops.identity.rules import MergePolicy
from memberops.identity.service import IdentityService
from memberops.ingest.service import IngestService
from memberops.kit.crypto import IdentifierVault, get_vault
from memberops.kit.db import get_engine, read_only, session_factory
from memberops.kit.settings import Settings, get_settings
from memberops.loyalty.ingest_hook import LoyaltyIngestService
from memberops.loyalty.merging import LoyaltyCarrier
from memberops.loyalty.service import LoyaltyService


@dataclass(frozen=True)
class Services:
    """Everything an entry point needs: sessions for writing and reading, and the use cases."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    vault: IdentifierVault
    identity: IdentityService
    ingest: IngestService
    loyalty: LoyaltyService


def build_services(
    settings: Settings | None = None, engine: Engine | None = None, vault: IdentifierVault | None = None
) -> Services:
    """Wire the services for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    engine = engine or get_engine(settings.database_url)
    vault = vault or get_vault()
    policy = MergePolicy(
        merge_kinds=frozenset(settings.merge_identifier_types),
        absorb_anonymous=settings.absorb_anonymous_persons,
        merge_compatible=settings.merge_compatible_persons,
    )
    loyalty = LoyaltyService(settings.time_zone)
    identity = IdentityService(vault, policy, carrier=LoyaltyCarrier(loyalty.time_zone))
    return Services(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        read_sessions=session_factory(read_only(engine)),
        vault=vault,
        identity=identity,
        ingest=LoyaltyIngestService(identity, loyalty),
        loyalty=loyalty,
    )
