"""What a migration's output says, folder by folder: a dry run's plan and a real run's check.

Pure functions over the summary the parser made (purelyops.imapsync_output.Summary, as
the dict stored with the job). imapsync prints every folder's size on both sides before
the copy and again after it; the plan reads the first listing, the check the second.
imapsync 2.229 never warns that the destination's quota will be exceeded (its own check
is broken), so the plan works it out from "Host2: Quota current storage is X bytes.
Limit is Y bytes" and the source's total size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MiB = 2**20


@dataclass(frozen=True)
class FolderRow:
    name: str
    source_msgs: int
    source_bytes: int
    dest_msgs: int | None = None  # a check's count at the destination
    state: str = "planned"  # "planned" (plan), "ok" / "short" (check), "skipped" (excluded)
    why: str = ""  # what imapsync said went wrong in this folder, when it said

    @property
    def icon(self) -> str:
        return {"ok": "✅", "short": "❌", "skipped": "⏭"}.get(self.state, "•")


@dataclass(frozen=True)
class Plan:
    rows: list[FolderRow]
    excluded: list[str]
    max_age_days: int | None
    total_msgs: int
    total_bytes: int
    quota_free: int | None  # bytes free at the destination, when it reports a quota
    quota_limit: int | None

    @property
    def over_by(self) -> int | None:
        """Bytes over the destination's free quota (<= 0: it fits); None when unknown."""
        return None if self.quota_free is None else self.total_bytes - self.quota_free

    @property
    def fits_words(self) -> str:
        over = self.over_by
        if over is None:
            return "the destination reports no quota, so whether it fits is not known"
        if over <= 0:
            return f"fits: {mib(self.total_bytes)} into {mib(self.quota_free or 0)} free"
        return f"does not fit: {mib(over)} over ({mib(self.total_bytes)} into {mib(self.quota_free or 0)} free)"


@dataclass(frozen=True)
class Check:
    rows: list[FolderRow]
    complete: bool  # every folder that was copied has at least as many messages at the destination
    short: list[FolderRow] = field(default_factory=list)
    counted: bool = True  # False: no folder sizes were printed (the run stopped before the end)

    @property
    def short_words(self) -> str:
        return "; ".join(f"{row.name} ({row.dest_msgs or 0} of {row.source_msgs}"
                         + (f": {row.why}" if row.why else "") + ")" for row in self.short)


def mib(n: int) -> str:
    return f"{n / MiB:,.1f} MiB"


def plan(summary: dict[str, Any], max_age_days: int | None = None) -> Plan:
    sizes = summary.get("source_before") or {}
    rows = [FolderRow(name, msgs, size) for name, (msgs, size) in sorted(sizes.items())]
    rows += [FolderRow(name, 0, 0, state="skipped", why="excluded by the folder pattern")
             for name in summary.get("excluded") or []]
    quota = summary.get("quota")
    total_bytes = sum(r.source_bytes for r in rows if r.state != "skipped")
    return Plan(rows, list(summary.get("excluded") or []), max_age_days,
                sum(r.source_msgs for r in rows if r.state != "skipped"), total_bytes,
                None if not quota else max(0, quota[1] - quota[0]), None if not quota else quota[1])


GMAIL_ALL_MAIL = "[Gmail]/All Mail"
CROSS_DUPLICATE = "its messages also carry an earlier label, copied once (Gmail)"


def check(summary: dict[str, Any], provider: str | None = None) -> Check:
    """Every copied folder with both counts. From Gmail (imapsync's --gmail1 copies a message
    with several labels once, into the first label's folder), a folder may hold fewer messages
    at the destination with nothing lost: there, every message of "[Gmail]/All Mail" must have
    arrived somewhere, and only then are such folders counted as arrived."""
    source = summary.get("source_after") or {}
    dest = summary.get("dest_after") or {}
    problems = summary.get("folder_problems") or {}
    arrived_somewhere = False
    if provider == "gmail" and GMAIL_ALL_MAIL in source:
        arrived_somewhere = sum(counts[0] for counts in dest.values()) >= source[GMAIL_ALL_MAIL][0]
    rows = []
    for name, (msgs, size) in sorted(source.items()):
        got = (dest.get(name) or [0, 0])[0]
        why = ", ".join(problems.get(name) or [])
        if got >= msgs:
            state = "ok"
        elif arrived_somewhere and not why:
            state, why = "ok", CROSS_DUPLICATE
        else:
            state = "short"
        rows.append(FolderRow(name, msgs, size, got, state, why))
    rows += [FolderRow(name, 0, 0, state="skipped", why="excluded by the folder pattern")
             for name in summary.get("excluded") or []]
    short = [r for r in rows if r.state == "short"]
    return Check(rows, not short and bool(source), short, counted=bool(source))


def largest(rows: list[FolderRow], count: int) -> tuple[list[FolderRow], int]:
    """The `count` largest folders (by messages), and how many are left out."""
    ranked = sorted(rows, key=lambda r: (r.state == "skipped", -r.source_msgs, r.name))
    return ranked[:count], max(0, len(rows) - count)


def table(rows: list[FolderRow], *, with_dest: bool) -> str:
    """Every folder as a plain-text table: the file attached when a message cannot hold it."""
    width = max([len("Folder")] + [len(r.name) for r in rows])
    head = f"{'Folder':<{width}}  {'Messages':>9}  {'Size':>12}" + (f"  {'Arrived':>9}  State" if with_dest else "")
    lines = [head, "-" * len(head)]
    for r in rows:
        line = f"{r.name:<{width}}  {r.source_msgs:>9,}  {mib(r.source_bytes):>12}"
        if with_dest:
            arrived = "" if r.dest_msgs is None else f"{r.dest_msgs:,}"
            line += f"  {arrived:>9}  {r.icon} {r.why}".rstrip()
        elif r.state == "skipped":
            line += f"  {r.icon} {r.why}"
        lines.append(line)
    return "\n".join(lines) + "\n"
