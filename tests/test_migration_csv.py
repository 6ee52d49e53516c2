"""The bulk-migration CSV: every bad row named by its line, nothing accepted half-way."""

from __future__ import annotations

import pytest

from purelyops.migration_csv import CsvProblems, parse

HEADER = "source_email,source_password,dest_email,dest_password\n"


def problems(data) -> list[tuple[int, str]]:
    with pytest.raises(CsvProblems) as caught:
        parse(data)
    return caught.value.problems


def test_a_good_csv_with_bom_crlf_and_quoted_commas() -> None:
    data = ("\ufeff" + HEADER.replace("\n", "\r\n") + 'A@Old.example,"pa,ss ""q""",a@new.example,\r\n'
            "b@old.example,$(rm -rf /)`id`🔑,b@new.example,dest-pw\r\n\r\n").encode()
    rows = parse(data)
    assert [(r.line, r.source_email, r.source_password, r.dest_password) for r in rows] == [
        (2, "a@old.example", 'pa,ss "q"', ""), (3, "b@old.example", "$(rm -rf /)`id`🔑", "dest-pw")]


@pytest.mark.parametrize(("data", "line", "words"), [
    ("", 0, "empty"),
    ("\n\n", 0, "empty"),
    (HEADER, 0, "no rows"),
    ("email,password\na@b.com,x\n", 1, "first line must be"),
    (HEADER + "a@old.example,pw,a@new.example\n", 2, "3 columns"),
    (HEADER + "a@old.example,pw,a@new.example,x,y\n", 2, "5 columns"),
    (HEADER + "a@old.example,,a@new.example,\n", 2, "source_password is empty"),
    (HEADER + "-a@old.example,pw,a@new.example,\n", 2, "source_email"),
    (HEADER + "a@old.example,pw,not-an-address,\n", 2, "dest_email"),
    (HEADER + "a@old.example,pw,a@http://x,\n", 2, "dest_email"),
    (HEADER + " @old.example,pw,a@new.example,\n", 2, "source_email"),
    (HEADER + "a@old.example,pw,a@new.example,\na@old.example,pw2,a@new.example,\n", 3, "same move as line 2"),
    (HEADER + 'a@old.example,"multi\nline",a@new.example,\n', 2, "line break"),
    (HEADER + "a@old.example," + "x" * 1025 + ",a@new.example,\n", 2, "longer than 1024"),
    (HEADER + "a@old.example,pw,a@new.example,\x00\n", 0, "NUL"),
    (HEADER + 'a@old.example,"unclosed,a@new.example,\n', 2, "2 columns"),
    (HEADER + "ålice@old.example,pw,a@new.example,\n", 2, "source_email"),
    (HEADER + "a" * 10_000 + "@old.example,pw,a@new.example,\n", 2, "source_email"),
    (HEADER + "".join(f"u{i}@old.example,pw,u{i}@new.example,\n" for i in range(10_000)), 0, "at most 2,000"),
    (b"\xff\xfe" + HEADER.encode("utf-16-le"), 0, "not UTF-8"),
    (b"x" * (3 * 2**20), 0, "at most 2 MiB"),
])
def test_bad_files_name_the_line_and_the_problem(data, line: int, words: str) -> None:
    found = problems(data)
    assert any(n == line and words in message for n, message in found), found


def test_every_bad_row_is_listed_not_just_the_first() -> None:
    data = HEADER + "a@old.example,pw,a@new.example,\nbad,pw,x@new.example,\nc@old.example,,c@new.example,\nzz\n"
    assert [n for n, _ in problems(data)] == [3, 4, 5]


SECRET = "Hunter2@pw!x"


@pytest.mark.parametrize(("row", "words"), [
    # columns in another order: the password lands where an address is expected
    (f"{SECRET},a@old.example,a@new.example,", "line 2: source_email is not a valid email address, like "
                                               "alice@example.com (column 1)"),
    (f"a@old.example,pw-1,{SECRET},", "line 2: dest_email is not a valid email address"),
    # an unquoted comma in the password, the destination password left out: shifted by one
    ("a@old.example,Hunter2,@pw!x,a@new.example", "line 2: dest_email is not a valid email address"),
    ("a@old.example,Hun,ter2@pw!x,a@new.example", "line 2: dest_email is not a valid email address"),
    (f"a@old.example,{SECRET},a@new.example,x,y", "line 2: 5 columns instead of 4"),
    (f"a@old.example,\"{SECRET}\n\",a@new.example,", "line 2: source_password contains a line break or a NUL "
                                                    "character (column 2)"),
    (f"{SECRET}{SECRET},{SECRET},{SECRET},{SECRET}", "source_email is not an email address (it needs one @"),
    (f"nobody,{SECRET},a@new.example,", "source_email is not an email address"),
    (f",{SECRET},a@new.example,", "source_email is empty (column 1)"),
])
def test_no_message_repeats_a_cell_that_may_be_a_password(row: str, words: str) -> None:
    found = problems(HEADER + row + "\n")
    shown = "; ".join(f"line {n}: {message}" for n, message in found)
    assert words in shown
    for part in (SECRET, "Hunter2", "ter2", "@pw!x", "Hun"):
        assert part not in shown
