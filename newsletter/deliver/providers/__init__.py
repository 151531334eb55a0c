"""Mail providers behind one small interface (see base.py).

`get_provider(settings)` picks one from `settings.provider` (NEWSLETTER_PROVIDER, else
`sendgrid` when SENDGRID_API_KEY is set, else `file`). Each provider module is imported only
here, when chosen, so commands that do not send never import smtplib or the sendgrid package.

Every provider has `name`, `max_batch` (most recipients per `send_batch` call: 1000),
`send_batch(campaign, recipients) -> list[Result]` (one per recipient, in order) and `close()`.
Messages are built by `deliver.message.MessageFactory` (file, smtp) or sent as one SendGrid
request with one personalization per recipient (sendgrid).
"""

from __future__ import annotations

from newsletter.deliver.providers.base import Provider


def get_provider(settings) -> Provider:
    """The configured provider, ready to send. ConfigError names what is missing or wrong."""
    name = settings.provider
    if name == "sendgrid":
        from newsletter.deliver.providers.sendgrid import SendGridProvider

        return SendGridProvider.from_settings(settings)
    if name == "smtp":
        from newsletter.deliver.providers.smtp import SmtpProvider

        return SmtpProvider.from_settings(settings)
    from newsletter.deliver.providers.file import FileProvider

    return FileProvider(settings.outbox)
