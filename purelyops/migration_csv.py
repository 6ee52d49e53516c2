"""The CSV of a bulk migration: `source_email,source_password,dest_email,dest_password`.

Every row is checked before anything is created; the errors name each bad row by its
line number and the column, and never repeat a cell (any of them may be a password). A
blank destination password means a temporary app password.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from purelyops.mailboxes import MailboxError, check_address
from purelyops.migrations import password_problem

HEADER = ["source_email", "source_password", "dest_email", "dest_password"]
# The template's example row: made-up addresses and a placeholder, never anyone's password;
# its blank destination password means a temporary app password.
EXAMPLE = ["alice@old.example", "alices-old-password", "alice@example.com", ""]
MAX_ROWS = 2000
MAX_BYTES = 2 * 2**20


@dataclass(frozen=True)
class Row:
    line: int
    source_email: str
    source_password: str
    dest_email: str
    dest_password: str  # "": a temporary app password


class CsvProblems(Exception):
    """[(line, message)]; line 0 is about the file as a whole."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


def _not_an_address(value: str) -> str:
    """What is wrong with a cell that should be an address, without repeating it."""
    if not value.strip():
        return "is empty"
    if value.count("@") != 1:
        return "is not an email address (it needs one @, like alice@example.com)"
    return "is not a valid email address, like alice@example.com"


def template() -> str:
    """The CSV a batch starts from: the header and one example row."""
    return ",".join(HEADER) + "\n" + ",".join(EXAMPLE) + "\n"


def parse(data: bytes | str, *, token_sign_in: bool = False) -> list[Row]:
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise CsvProblems([(0, f"the file is {len(data) // 1024} KiB; at most {MAX_BYTES // 2**20} MiB")])
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CsvProblems([(0, "the file is not UTF-8 text; save it as CSV UTF-8")]) from None
    else:
        text = data.removeprefix("\ufeff")
    if "\x00" in text:
        raise CsvProblems([(0, "the file contains NUL characters; is it really a CSV file?")])
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = list(reader)
    except csv.Error as error:
        raise CsvProblems([(reader.line_num, f"unreadable CSV: {error}")]) from None
    records = [(n, r) for n, r in enumerate(records, 1) if any(cell.strip() for cell in r)]
    if not records:
        raise CsvProblems([(0, "the CSV is empty; its first line is " + ",".join(HEADER))])
    header_line, header = records[0]
    if [h.strip().lower() for h in header] != HEADER:
        raise CsvProblems([(header_line, "the first line must be exactly " + ",".join(HEADER))])
    body = records[1:]
    if not body:
        raise CsvProblems([(0, "the CSV has a header but no rows")])
    if len(body) > MAX_ROWS:
        raise CsvProblems([(0, f"{len(body):,} rows; one batch can have at most {MAX_ROWS:,}: split the file")])
    rows: list[Row] = []
    problems: list[tuple[int, str]] = []
    seen: dict[tuple[str, str], int] = {}
    for line, cells in body:
        if len(cells) != len(HEADER):
            problems.append((line, f"{len(cells)} columns instead of 4 (a comma in a password needs quotes)"))
            continue
        source, source_password, dest, dest_password = cells
        row_problems = []
        # Never a cell's value in a message: in a row whose columns are shifted (a comma in a
        # password, columns in another order), any cell may hold a password.
        try:
            source = check_address(source)
        except MailboxError:
            row_problems.append(f"source_email {_not_an_address(source)} (column 1)")
        try:
            dest = check_address(dest)
        except MailboxError:
            row_problems.append(f"dest_email {_not_an_address(dest)} (column 3)")
        if token_sign_in and source_password:
            row_problems.append("source_password: leave it empty (column 2): this server signs in with an app or a "
                                "service account, and no mailbox's password is needed")
        for column, name, value, required in ((2, "source_password", source_password, not token_sign_in),
                                              (4, "dest_password", dest_password, False)):
            problem = password_problem(value, required=required)
            if problem:
                row_problems.append(f"{name} {problem} (column {column})")
        if not row_problems:
            first = seen.setdefault((source, dest), line)
            if first != line:
                row_problems.append(f"the same move as line {first}")
        if row_problems:
            problems.append((line, "; ".join(row_problems)))
        else:
            rows.append(Row(line, source, source_password, dest, dest_password))
    if problems:
        raise CsvProblems(problems)
    return rows
