"""What a check reports: one Finding per problem, in a small closed vocabulary of levels."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

Level = Literal["error", "warning", "note"]
LEVELS: tuple[Level, ...] = ("error", "warning", "note")


@dataclass(frozen=True)
class Finding:
    """One result of `newsletter check`.

    level: "error" blocks a send, "warning" deserves a look, "note" is information.
    category: the check that found it (size, links, images, compliance, accessibility, spam).
    where: the story, part or field it concerns, when one is known.
    """

    level: Level
    category: str
    message: str
    where: str | None = None

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {self.level!r}")

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


def error(category: str, message: str, where: str | None = None) -> Finding:
    return Finding("error", category, message, where)


def warning(category: str, message: str, where: str | None = None) -> Finding:
    return Finding("warning", category, message, where)


def note(category: str, message: str, where: str | None = None) -> Finding:
    return Finding("note", category, message, where)


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Errors first, then warnings, then notes; by category inside a level; otherwise as found."""
    return sorted(findings, key=lambda f: (LEVELS.index(f.level), f.category))


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    result = {level: 0 for level in LEVELS}
    for finding in findings:
        result[finding.level] += 1
    return result
