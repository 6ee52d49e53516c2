"""Input checked field by field: every problem at once, each named by its field (a modal's
block_id), so that Slack can show it inline on that field."""

from __future__ import annotations


class FieldProblems(Exception):
    """{field: message}; the messages are for the admin."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(problems.values()))
        self.problems = problems
