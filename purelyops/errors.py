"""What a service raises when it will not do what was asked.

`Refused` is an action that cannot be carried out now (no such mailbox, already
scheduled, not a domain name…); its message is for the admin, in plain words, and is
escaped wherever it is shown. Each concept has its own subclass, so that callers can
tell them apart (`MailboxError`, `DomainError`, `RoutingRuleError`, `ServerError`,
`MigrationError`, …). Problems with a form's fields are `purelyops.fields.FieldProblems`
instead, shown on the fields.
"""

from __future__ import annotations


class Refused(Exception):
    """An action that cannot be carried out now; the message is for the admin."""


class Busy(Refused):
    """The same work is already under way; the message says what will follow."""
