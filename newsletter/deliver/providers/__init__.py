"""Mail providers by name: each module here registers one provider class (see base.py).

Which provider a project uses: `NEWSLETTER_PROVIDER` when it is set; otherwise the first
registered provider whose `selected_by` setting is present (in the order of the imports below:
`sendgrid` when SENDGRID_API_KEY is set, then `smtp` when SMTP_URL is set); otherwise `file`,
which needs nothing. Heavy client libraries are imported by each module only when it sends.

Every provider has `name`, `max_batch` (most recipients per `send_batch` call),
`default_connections`, `from_settings`, `usable`, `describe`, `webhook`,
`send_batch(campaign, recipients) -> list[Result]` (one per recipient, in order) and `close()`.
"""

from __future__ import annotations

# Importing a provider module registers it; the import order is the order of automatic choice.
from newsletter.deliver.providers import file, sendgrid, smtp  # noqa: F401
from newsletter.deliver.providers.base import REGISTRY, Provider, Webhook
from newsletter.errors import ConfigError

FALLBACK = "file"

__all__ = ["REGISTRY", "Provider", "Webhook", "chosen", "get_provider",
           "provider_class"]


def chosen(settings) -> str:
    """The name of the provider these settings select (ConfigError for an unknown name)."""
    name = settings.getenv("NEWSLETTER_PROVIDER")
    if name is not None and name.strip():
        name = name.strip().lower()
        if name not in REGISTRY:
            raise ConfigError(
                f"unknown provider {name!r} (expected one of: {', '.join(REGISTRY)})",
                field="NEWSLETTER_PROVIDER",
            )
        return name
    for cls in REGISTRY.values():
        setting = getattr(cls, "selected_by", None)
        if setting and settings.getenv(setting):
            return cls.name
    return FALLBACK


def provider_class(settings) -> type[Provider]:
    """The class of the chosen provider (nothing is configured or connected)."""
    return REGISTRY[chosen(settings)]


def get_provider(settings) -> Provider:
    """The configured provider, ready to send. ConfigError names what is missing or wrong."""
    return provider_class(settings).from_settings(settings)

