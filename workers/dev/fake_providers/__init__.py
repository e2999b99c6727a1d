"""Local fake SMS and messenger providers that speak each provider's real HTTP API.

Tests point the adapters at them; embedded `rapport run` starts them as a child
process (`rapport fake-providers`) so every channel works and fills the outbox.
"""

from __future__ import annotations

from workers.dev.fake_providers.server import FakeProviders
from workers.dev.fake_providers.state import FakeCredentials, FakeMessage, fake_provider_env

__all__ = ["FakeCredentials", "FakeMessage", "FakeProviders", "fake_provider_env"]
