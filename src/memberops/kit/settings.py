"""Settings from the environment (``MEMBEROPS_*``), with defaults that run embedded.

Numbers that are business rules (the repurchase cycle, tier thresholds…) live in the brand's
programme configuration, not here; this is only where the process finds its resources.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process settings; read once per process (see ``get_settings``)."""

    model_config = SettingsConfigDict(env_prefix="MEMBEROPS_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./memberops.db",
        description="SQLAlchemy URL: sqlite:///PATH (embedded) or postgresql+psycopg://USER@HOST/DB",
    )
    time_zone: str = Field(default="Asia/Shanghai", description="the brand's time zone for business dates")
    secret_key: str | None = Field(
        default=None,
        description="base64 of 32 random bytes; keys identifier hashing and encryption",
    )
    secret_file: Path = Field(
        default=Path("./memberops.secret"),
        description="where the secret is kept when MEMBEROPS_SECRET_KEY is not set (created on first use)",
    )
    reveal_identifier_roles: frozenset[str] = Field(
        default=frozenset({"admin"}),
        description="roles that see identifiers in clear; every other role sees them masked",
    )
    merge_identifier_types: frozenset[str] = Field(
        default=frozenset({"phone", "unionid", "member_no"}),
        description="identifier types whose sharing merges two persons into one",
    )
    merge_compatible_persons: bool = Field(
        default=True,
        description="a known person reached by a weak identifier joins when no identifier type clashes",
    )
    absorb_anonymous_persons: bool = Field(
        default=True,
        description="a person known only by non-merging identifiers joins the person a record names",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process settings (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings()
