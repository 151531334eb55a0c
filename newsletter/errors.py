"""The exceptions of the library. The CLI turns every NewsletterError into one line on stderr."""

from __future__ import annotations

from pathlib import Path


class NewsletterError(Exception):
    """Root of every error a user can cause or fix. Carries where it happened."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class ConfigError(NewsletterError):
    """newsletter.toml or the environment is missing something or holds a bad value."""


class IssueError(NewsletterError):
    """The issue file cannot be read or does not validate. `problems` holds all of them."""

    def __init__(self, problems: list[NewsletterError]) -> None:
        first = problems[0]
        super().__init__(first.message, file=first.file, line=first.line, field=first.field)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(NewsletterError.__str__(p) for p in self.problems)


class RenderError(NewsletterError):
    """A template or the MJML document failed to render."""


class StoreError(NewsletterError):
    """The subscriber database refused an operation (bad CSV, unknown address, ...)."""


class ProviderError(NewsletterError):
    """A mail provider failed. `status` is the HTTP or SMTP code when there was one."""

    def __init__(self, message: str, *, provider: str, status: int | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status


class ProviderAuthError(ProviderError):
    """The provider refused the credentials (401/403, SMTP 535). Stops a send at once."""
