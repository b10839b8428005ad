"""What a provider client needs to be built: the admin's saved settings with the secrets already decrypted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProviderConfig:
    """One provider's configuration, as the integrations service hands it to a client.

    `secrets` holds decrypted values: never log it, never put it in an exception message. `repr` leaves it out.
    `allow_private` is true only for self-hosted providers (Plex, Calibre-Web) or for a base URL that came from the
    server's own settings rather than from the admin's form.
    """

    provider: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    base_url: str | None = None
    allow_private: bool = False
    timeout: float = 10.0

    def secret(self, name: str) -> str:
        """The decrypted secret `name`, or "" when it is not set."""
        return self.secrets.get(name, "") or ""
