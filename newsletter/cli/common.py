"""Shared CLI helpers: settings loading and turning library errors into one-line messages."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from newsletter.errors import NewsletterError


class UserError(click.ClickException):
    """Printed as the message alone (no "Error:" prefix), exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


def reports_errors(func: Callable) -> Callable:
    """Turn NewsletterError into a clean message and exit status 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NewsletterError as exc:
            raise UserError(str(exc)) from None

    return wrapper


def load_settings():
    from newsletter.config import load_settings as load

    return load()
