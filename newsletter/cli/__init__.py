"""The command line: the only place that imports click and turns errors into messages.

Each command family lives in its own module and imports heavy libraries inside the command
body, so `newsletter build` pays only for what a build needs.
"""

from __future__ import annotations

import click

from newsletter import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
def main() -> None:
    """Compose, build, check and send a monthly email newsletter.

    \b
    Example:
      newsletter init my-newsletter
      newsletter new --date 2011-06-01
      newsletter build issues/2011-05.yaml
      newsletter send issues/2011-05.yaml --test
    """


def _register() -> None:
    from importlib import import_module

    # Each family module imports only click at the top; its heavy imports wait in the
    # command bodies, so registering every command costs a build nothing measurable.
    for module in ("init", "build", "add", "send", "schedule", "report", "subscribers", "check",
                   "preview", "serve", "archive", "db"):
        for command in import_module(f"newsletter.cli.{module}").COMMANDS:
            main.add_command(command)


_register()
