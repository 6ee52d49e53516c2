"""Whether a folder-exclusion regex is safe to hand to imapsync, which matches it (in Perl)
against every folder name of a mailbox that someone else may have named.

A backtracking engine can take exponential time on a pattern that offers it many ways to
match the same text, so these are refused, read from the pattern without running it:

- back-references (\\1…\\9, \\g…, \\k<…>): they switch off Perl's protection against
  super-linear matching, and `^(\\w|\\w\\w)*(\\1)!$` then spins on a 50-letter name;
- extensions (?…) and verbs (*…): flags, look-arounds, recursion and embedded code;
- a repeated group (`*`, `+`, `{n,}`, `{n,m}` with m > 1) holding a repeat of varying
  count (like `(a+)+` or `(a?)*`) or alternatives that can start alike (`(a|ab)*`);
- more than MAX_CHOICES repeats of varying count and alternations that can start alike in
  one alternative of the pattern (`\\w*\\w*\\w*\\w*!`, `(a|a)(a|a)(a|a)(a|a)`), whose ways
  to match multiply.

`regex_problem(pattern)` returns what is wrong, in words, or None. The pattern must also
compile with Python's `re` (checked by the caller), whose syntax is Perl's for what is left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_CHOICES = 3

BACKREFERENCE = ("the folder pattern refers back to a group (\\1, \\g…, \\k<…>), which can take forever "
                 "to match; write it without")
EXTENSION = "the folder pattern has an extension (?…) or (*…): flags, look-arounds and code are not allowed"
NESTED = ("the folder pattern has a repeated group with a repeat inside (like (a+)+), which can take forever "
          "to match; write it without")
OVERLAP = ("the folder pattern has a repeated group whose alternatives can start alike (like (a|ab)*), which can "
           "take forever to match")
TOO_MANY = (f"the folder pattern has more than {MAX_CHOICES} repeats (*, +, ?, {{…}}) or ambiguous | in one "
            "alternative, which can take very long to match; simplify it")

_QUANTIFIER = re.compile(r"\{(\d*)(,?)(\d*)\}")
_ANCHOR_ESCAPES = set("bBAZzG")
_CODE_ESCAPES = {"N": "", "x": "0123456789abcdefABCDEF", "u": "0123456789abcdefABCDEF", "U": "0123456789abcdefABCDEF",
                 "0": "01234567"}
_CODE_LENGTHS = {"x": 2, "u": 4, "U": 8, "0": 2}


@dataclass
class _Atom:
    kind: str  # "char" (text is the character), "set" (text is its regex), "any", "anchor", "group"
    text: str = ""
    group: _Group | None = None
    low: int = 1
    high: int | None = 1  # None: no upper bound

    @property
    def varies(self) -> bool:
        return self.high is None or self.high != self.low

    @property
    def repeats(self) -> bool:
        return self.high is None or self.high > 1


@dataclass
class _Group:
    branches: list[list[_Atom]] = field(default_factory=lambda: [[]])


class _Refused(Exception):
    pass


def regex_problem(pattern: str) -> str | None:
    """What makes `pattern` unsafe for imapsync's --exclude, in words; None if nothing."""
    try:
        _scan(pattern)
    except _Refused as refused:
        return str(refused)
    try:
        root = _parse(pattern)
    except (_Refused, IndexError, ValueError):
        return None  # not something Python's re compiles either: the caller says so
    try:
        _check(root, repeated=False)
        for branch in root.branches:
            if _choices(branch) > MAX_CHOICES:
                raise _Refused(TOO_MANY)
    except _Refused as refused:
        return str(refused)
    return None


def _scan(pattern: str) -> None:
    """Back-references and extensions, outside character classes."""
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            following = pattern[i + 1:i + 2]
            if not in_class and following and following in "123456789gk":
                raise _Refused(BACKREFERENCE)
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            i += 1
            if pattern[i:i + 1] == "^":
                i += 1
            if pattern[i:i + 1] == "]":  # a ] first in a class is a character
                i += 1
            continue
        elif c == "(" and pattern[i + 1:i + 2] in ("?", "*"):
            raise _Refused(EXTENSION)
        i += 1


def _parse(pattern: str) -> _Group:
    root = _Group()
    stack = [root]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        atom: _Atom | None = None
        if c == "\\":
            following = pattern[i + 1]
            if following in _ANCHOR_ESCAPES:
                atom, i = _Atom("anchor"), i + 2
            elif following in _CODE_ESCAPES:  # \xhh, \uhhhh, \Uhhhhhhhh, \N{…}, \0oo: one character
                end = _escape_end(pattern, i)
                atom, i = _Atom("set", pattern[i:end]), end
            elif following.isalnum():  # \w, \d, \s, \t, \n…
                atom, i = _Atom("set", pattern[i:i + 2]), i + 2
            else:
                atom, i = _Atom("char", following), i + 2
        elif c == "[":
            end = _class_end(pattern, i)
            atom = _Atom("set", pattern[i:end])
            i = end
        elif c == "(":
            group = _Group()
            stack[-1].branches[-1].append(_Atom("group", group=group))
            stack.append(group)
            i += 1
            continue
        elif c == ")":
            if len(stack) == 1:
                raise _Refused("unbalanced")
            stack.pop()
            i += 1
            atom = stack[-1].branches[-1].pop()
        elif c == "|":
            stack[-1].branches.append([])
            i += 1
            continue
        elif c in "^$":
            atom = _Atom("anchor")
            i += 1
        elif c == ".":
            atom = _Atom("any")
            i += 1
        else:
            atom = _Atom("char", c)
            i += 1
        i = _quantify(pattern, i, atom)
        stack[-1].branches[-1].append(atom)
    return root


def _escape_end(pattern: str, start: int) -> int:
    kind = pattern[start + 1]
    if kind == "N":
        return pattern.index("}", start) + 1
    end = start + 2
    while end < start + 2 + _CODE_LENGTHS[kind] and pattern[end:end + 1] and pattern[end] in _CODE_ESCAPES[kind]:
        end += 1
    return end


def _class_end(pattern: str, start: int) -> int:
    i = start + 1
    if pattern[i:i + 1] == "^":
        i += 1
    if pattern[i:i + 1] == "]":
        i += 1
    while pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


def _quantify(pattern: str, i: int, atom: _Atom) -> int:
    """Read the quantifier after an atom, if any, into it; the index after it."""
    c = pattern[i:i + 1]
    bounds: tuple[int, int | None] | None = None
    if c == "*":
        bounds, i = (0, None), i + 1
    elif c == "+":
        bounds, i = (1, None), i + 1
    elif c == "?":
        bounds, i = (0, 1), i + 1
    elif c == "{":
        found = _QUANTIFIER.match(pattern, i)
        if found and (found.group(1) or found.group(2)):
            low = int(found.group(1) or 0)
            high = None if found.group(2) and not found.group(3) else int(found.group(3) or low)
            bounds, i = (low, high), found.end()
    if bounds is None:
        return i
    if pattern[i:i + 1] in ("?", "+"):  # lazy or possessive: as many ways to match
        i += 1
    atom.low, atom.high = bounds
    return i


def _check(group: _Group, *, repeated: bool) -> None:
    """Inside a repeated group, no repeat of varying count, no alternatives that start alike."""
    if repeated and len(group.branches) > 1 and _ambiguous(group):
        raise _Refused(OVERLAP)
    for branch in group.branches:
        for atom in branch:
            if repeated and atom.varies:
                raise _Refused(NESTED)
            if atom.group is not None:
                _check(atom.group, repeated=repeated or atom.repeats)


def _choices(branch: list[_Atom]) -> int:
    """How many places in `branch` can match in more than one way."""
    count = 0
    for atom in branch:
        count += atom.varies
        if atom.group is not None:
            count += len(atom.group.branches) > 1 and _ambiguous(atom.group)
            count += sum(_choices(inner) for inner in atom.group.branches)
    return count


_EMPTY = _Atom("empty")


def _first(branch: list[_Atom]) -> list[_Atom]:
    """The atoms a match of `branch` can start with (_EMPTY: it can match nothing)."""
    found: list[_Atom] = []
    for atom in branch:
        if atom.kind == "anchor":
            continue
        if atom.group is not None:
            inner = [a for b in atom.group.branches for a in _first(b)]
            found += [a for a in inner if a is not _EMPTY]
            nullable = _EMPTY in inner
        else:
            found.append(atom)
            nullable = False
        if not (nullable or atom.low == 0):
            return found
    return found + [_EMPTY]


def _ambiguous(group: _Group) -> bool:
    """Whether two alternatives of `group` can start with the same character."""
    starts = [_first(branch) for branch in group.branches]
    for n, mine in enumerate(starts):
        for theirs in starts[n + 1:]:
            if any(_overlap(a, b) for a in mine for b in theirs):
                return True
    return False


def _overlap(a: _Atom, b: _Atom) -> bool:
    if a.kind == "char" and b.kind == "char":
        return a.text == b.text
    if a.kind == "char" and b.kind == "set":
        return _matches(b.text, a.text)
    if a.kind == "set" and b.kind == "char":
        return _matches(a.text, b.text)
    return True  # two sets, any character, or an empty match: they may


def _matches(regex: str, char: str) -> bool:
    try:
        return re.fullmatch(regex, char) is not None
    except re.error:
        return True
