"""Routing rules (PurelyMail's aliases and forwarding), with the panel's four presets."""

from __future__ import annotations

from dataclasses import dataclass

from purelyops import audit, deletions
from purelyops.domain_names import InvalidDomain, normalize_domain
from purelyops.errors import Refused
from purelyops.fields import FieldProblems
from purelyops.mailboxes import MailboxError, check_address, check_local_part
from purelyops.purelymail import RoutingRule
from purelyops.runtime import Runtime

MAX_TARGETS = 20
# preset → (prefix, catchall, needs a match text)
PRESETS = {
    "exact": (False, False, True),  # exactly alias@domain
    "prefix": (True, False, True),  # every address starting with the text
    "any": (True, False, False),  # every address on the domain
    "catchall": (True, True, False),  # every address on the domain that is not a mailbox
}


class RoutingRuleError(Refused):
    """A routing-rule request that cannot be carried out; the message is for the admin."""


@dataclass(frozen=True)
class NewRoutingRule:
    domain: str
    preset: str
    match_user: str
    targets: tuple[str, ...]

    @property
    def description(self) -> str:
        return describe(self.preset_flags[0], self.match_user, self.preset_flags[1], self.domain)

    @property
    def preset_flags(self) -> tuple[bool, bool]:
        prefix, catchall, _ = PRESETS[self.preset]
        return prefix, catchall


def describe(prefix: bool, match_user: str, catchall: bool, domain: str) -> str:
    if catchall:
        return f"any address on {domain} that is not a mailbox"
    if prefix and not match_user:
        return f"every address on {domain}"
    if prefix:
        return f"every address on {domain} starting with {match_user}"
    return f"{match_user}@{domain}"


def parse_new_rule(values: dict) -> NewRoutingRule:
    """The modal's values → a rule, or FieldProblems {block_id: message}."""
    errors: dict[str, str] = {}
    domain = ""
    try:
        domain = normalize_domain(str(values.get("domain") or "")).ascii
    except InvalidDomain as error:
        errors["domain"] = error.message
    preset = str(values.get("preset") or "")
    if preset not in PRESETS:
        errors["preset"] = "choose what the rule matches"
    match_user = str(values.get("match") or "").strip().lower()
    if preset in PRESETS and PRESETS[preset][2]:
        try:
            match_user = check_local_part(match_user) if preset == "exact" else _prefix(match_user)
        except MailboxError as error:
            errors["match"] = str(error)
    else:
        match_user = ""
    raw_targets = [t for t in str(values.get("targets") or "").replace(",", "\n").split("\n") if t.strip()]
    targets: list[str] = []
    if not raw_targets:
        errors["targets"] = "give at least one address to deliver to"
    elif len(raw_targets) > MAX_TARGETS:
        errors["targets"] = f"at most {MAX_TARGETS} target addresses"
    else:
        for raw in raw_targets:
            try:
                targets.append(check_address(raw))
            except MailboxError as error:
                errors["targets"] = f"{raw.strip()[:60]}: {error}"
                break
    if errors:
        raise FieldProblems(errors)
    return NewRoutingRule(domain, preset, match_user, tuple(dict.fromkeys(targets)))


def _prefix(value: str) -> str:
    if not value:
        raise MailboxError("give the start of the addresses, like sales-")
    if len(value) > 64 or not all(ch.isalnum() or ch in "._+-" for ch in value) or not value.isascii():
        raise MailboxError("use letters, digits and . _ + - only (at most 64)")
    return value


def create_rule(rt: Runtime, rule: NewRoutingRule, *, actor_id: str, actor_name: str = "") -> RoutingRule | None:
    """Create the rule, then find it in listRoutingRules (createRoutingRule returns no id)."""
    prefix, catchall = rule.preset_flags
    rt.purelymail.create_routing_rule(rule.domain, prefix=prefix, match_user=rule.match_user,
                                      target_addresses=list(rule.targets), catchall=catchall)
    found = [r for r in rt.purelymail.list_routing_rules()
             if (r.domain_name, r.prefix, r.match_user, r.catchall, tuple(r.target_addresses))
             == (rule.domain, prefix, rule.match_user, catchall, rule.targets)]
    created = max(found, key=lambda r: r.id) if found else None
    audit.record_now(rt, actor_id=actor_id, actor_name=actor_name, action="routing_rule.create",
                     target=str(created.id) if created else rule.domain,
                     params={"matches": rule.description, "targets": list(rule.targets)})
    return created


def check_domain(raw: str) -> str:
    """A domain to list the rules of, or RoutingRuleError saying why it is not a domain name."""
    try:
        return normalize_domain(raw).ascii
    except InvalidDomain as error:
        raise RoutingRuleError(error.sentence) from None


def list_rules(rt: Runtime, domain: str | None = None) -> list[RoutingRule]:
    rules = rt.purelymail.list_routing_rules()
    return sorted((r for r in rules if domain is None or r.domain_name == domain), key=lambda r: (r.domain_name, r.id))


def schedule_removal(rt: Runtime, rule_id: int, *, actor_id: str, channel_id: str | None) -> deletions.Scheduled:
    rule = next((r for r in rt.purelymail.list_routing_rules() if r.id == rule_id), None)
    if rule is None:
        raise RoutingRuleError(f"There is no routing rule {rule_id}; see `rule list`.")
    detail = f"It forwards {describe(rule.prefix, rule.match_user, rule.catchall, rule.domain_name)} to " \
             + ", ".join(rule.target_addresses) + "."
    return deletions.schedule(rt, kind="routing_rule", target=str(rule_id), actor_id=actor_id, detail=detail,
                              channel_id=channel_id)
