"""What a migration's output says, folder by folder: a dry run's plan and a real run's check.

Pure functions over the summary stored with the job (purelyops.imapsync_output.Summary as
a dict). The plan reads imapsync's folder sizes before the copy; the check is purelyops'
own (purelyops.mail_check, stored under "check"), never imapsync's counts.
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
    undated: int = 0  # with a maximum age: source messages without a usable Date, which it leaves out

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
    """The independent check after a real run (purelyops.mail_check), as the report shows it."""

    rows: list[FolderRow]
    complete: bool  # every source message of every folder was found in its destination folder
    short: list[FolderRow] = field(default_factory=list)
    counted: bool = True  # False: no check was made (or stored) for this run
    error: str | None = None  # why nothing could be checked
    source_msgs: int = 0
    missing: int = 0
    undated: int = 0

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
                None if not quota else max(0, quota[1] - quota[0]), None if not quota else quota[1],
                (summary.get("check") or {}).get("undated") or 0)


EXCUSED = "{n} carried under another label, copied once (Gmail)"


def check(summary: dict[str, Any], provider: str | None = None) -> Check:
    """Every checked folder: how many of its source messages were found in the folder it
    went to (summary["check"], stored by the runner from purelyops.mail_check). A run
    without a check (it stopped before anything could be checked) shows none."""
    stored = summary.get("check")
    if not stored:
        return Check([], False, counted=False)
    if stored.get("error"):
        return Check([], False, counted=False, error=stored["error"])
    sizes = summary.get("source_after") or summary.get("source_before") or {}
    problems = summary.get("folder_problems") or {}
    rows = []
    for f in stored.get("folders") or []:
        why = []
        if f["dest"] != f["source"]:
            why.append(f"into {f['dest']}")
        if f.get("gone"):
            why.append("no longer at the source")
        if f.get("excused"):
            why.append(EXCUSED.format(n=f["excused"]))
        if f["missing"]:
            why += problems.get(f["dest"]) or problems.get(f["source"]) or []
        rows.append(FolderRow(f["source"], f["source_msgs"], (sizes.get(f["source"]) or [0, 0])[1], f["arrived"],
                              "short" if f["missing"] else "ok", ", ".join(why)))
    rows.sort(key=lambda r: r.name)
    rows += [FolderRow(name, 0, 0, state="skipped", why="excluded by the folder pattern")
             for name in summary.get("excluded") or []]
    short = [r for r in rows if r.state == "short"]
    missing = sum(f["missing"] for f in stored.get("folders") or [])
    return Check(rows, not short and not missing, short, source_msgs=sum(r.source_msgs for r in rows),
                 missing=missing, undated=stored.get("undated") or 0)


def missing_table(missing: list) -> str:
    """Every message the check did not find (mail_check.Missing): the file in the job's thread."""
    head = f"{'Folder':<30}  {'Expected in':<30}  {'Date':<31}  {'Size':>9}  Message-Id"
    lines = [head, "-" * len(head)]
    for m in missing:
        lines.append(f"{m.folder:<30}  {m.dest:<30}  {(m.date or '(no Date)')[:31]:<31}  {m.size:>9,}  "
                     f"{m.message_id or '(none: --addheader gives its copy <' + str(m.uid) + '@imapsync>)'}")
    return "\n".join(lines) + "\n"


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
