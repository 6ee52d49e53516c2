"""Block Kit pieces shared by the builders, each cut to Slack's limits: text objects,
blocks, buttons and their confirm dialogs, dates, modal inputs, selects and the modal
itself. A builder composes these; it does not spell out Block Kit dicts of its own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.mrkdwn import clip, escape

Message = tuple[str, list[dict]]  # a message's text fallback and its blocks, as a builder returns them

# ---- messages ------------------------------------------------------------------------------
# A message's `text` is mrkdwn too, and it is what Slack notifies from: a `<!channel>` in it
# pings the channel even when the blocks show it escaped. A builder gives its fallback as
# plain words, and `fallback` escapes them with the very function that escapes the values in
# the blocks (bot.mrkdwn.escape), so that the two cannot differ.


def fallback(words: str) -> str:
    """A message's `text`, from plain words: every value in them shown, none read as markup."""
    return escape(words)


def message(words: str, blocks: list[dict]) -> Message:
    """A message: these blocks, and `words` (plain words, never mrkdwn) as its text fallback."""
    return fallback(words), blocks


def said(words: str) -> Message:
    """A message of these words alone: the same escaped text in its one section and its fallback."""
    text = fallback(words)
    return text, [section(text)]


# ---- text ----------------------------------------------------------------------------------


def plain(text: str, limit: int = 75) -> dict:
    """A plain_text object, cut to 75 characters (labels, button and option texts) unless
    another limit is given."""
    return {"type": "plain_text", "text": clip(text, limit)}


def mrkdwn(text: str, limit: int = 3000) -> dict:
    return {"type": "mrkdwn", "text": clip(text, limit)}


def slack_date(at: datetime, tokens: str, fallback: str) -> str:
    """Slack's `<!date^…>`: `at` in each reader's own time zone, written with `tokens`
    (like `{date_short} {time}`); clients that cannot show it show `fallback`."""
    return f"<!date^{int(at.timestamp())}^{tokens}|{fallback}>"


def when(at: datetime | None, never: str = "never") -> str:
    """A time each reader sees in their own time zone (UTC in the fallback text)."""
    if at is None:
        return never
    return slack_date(at, "{date_short_pretty} {time}", f"{at:%Y-%m-%d %H:%M} UTC")


# ---- blocks --------------------------------------------------------------------------------


def section(text: str, accessory: dict | None = None) -> dict:
    block: dict[str, Any] = {"type": "section", "text": mrkdwn(text)}
    if accessory:
        block["accessory"] = accessory
    return block


def line_sections(lines: list[str], budget: int = 2900) -> list[dict]:
    """Lines in as few sections as they fit in, `budget` characters each (a section holds
    3,000); a line is never split over two sections, and one longer than `budget` is cut."""
    chunks: list[str] = []
    for line in lines:
        line = clip(line, budget)
        if chunks and len(chunks[-1]) + 1 + len(line) <= budget:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    return [section(chunk) for chunk in chunks]


def fields_section(texts: list[str]) -> dict:
    """A section of side-by-side fields (at most 10, each up to 2,000 characters)."""
    return {"type": "section", "fields": [mrkdwn(text, 2000) for text in texts[:10]]}


def header(text: str) -> dict:
    return {"type": "header", "text": plain(text, 150)}


def context(*texts: str) -> dict:
    """Small grey text under a message (at most 10 elements)."""
    return {"type": "context", "elements": [mrkdwn(text) for text in texts[:10]]}


def actions(*elements: dict) -> dict:
    """A row of buttons (at most 25)."""
    return {"type": "actions", "elements": list(elements[:25])}


def divider() -> dict:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str, style: str | None = None, confirm: dict | None = None) -> dict:
    element: dict[str, Any] = {"type": "button", "text": plain(text), "action_id": action_id, "value": value[:2000]}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm(title: str, text: str, yes: str, no: str = "Back", style: str | None = "danger") -> dict:
    """The dialog a button asks through before it acts (a red Yes unless `style` is None)."""
    dialog = {"title": plain(title), "text": mrkdwn(text, 300), "confirm": plain(yes), "deny": plain(no)}
    if style:
        dialog["style"] = style
    return dialog


# ---- modal inputs --------------------------------------------------------------------------
# Every input's element has the action_id "value" unless said otherwise: a submission is
# read as view.state.values[block_id]["value"].


def input_block(block_id: str, label: str, element: dict, *, optional: bool = False, hint: str = "") -> dict:
    block: dict[str, Any] = {"type": "input", "block_id": block_id, "label": plain(label), "element": element}
    if optional:
        block["optional"] = True
    if hint:
        block["hint"] = plain(hint)
    return block


def text_input(max_length: int = 255, *, multiline: bool = False, placeholder: str = "",
               initial_value: str = "") -> dict:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value", "max_length": max_length}
    if multiline:
        element["multiline"] = True
    if placeholder:
        element["placeholder"] = plain(placeholder)
    if initial_value:
        element["initial_value"] = initial_value
    return element


def option(label: str, value: str) -> dict:
    return {"text": plain(label), "value": value}


def options(pairs: list[tuple[str, str]]) -> list[dict]:
    """Options from (value, label) pairs."""
    return [option(label, value) for value, label in pairs]


def static_select(choices: list[dict], initial: dict | None = None) -> dict:
    """A select of at most 100 options (Slack's limit; more need an external select)."""
    element: dict[str, Any] = {"type": "static_select", "action_id": "value", "options": choices[:100]}
    if initial:
        element["initial_option"] = initial
    return element


def external_select(action_id: str, placeholder: str, min_query_length: int = 1) -> dict:
    """A select whose options the bot serves as the user types (`app.options(action_id)`)."""
    return {"type": "external_select", "action_id": action_id, "min_query_length": min_query_length,
            "placeholder": plain(placeholder)}


def radio_buttons(choices: list[dict], initial: dict) -> dict:
    return {"type": "radio_buttons", "action_id": "value", "options": choices, "initial_option": initial}


def checkboxes(choices: list[dict], checked: list[dict] | None = None) -> dict:
    element: dict[str, Any] = {"type": "checkboxes", "action_id": "value", "options": choices}
    if checked:
        element["initial_options"] = checked
    return element


def file_input(filetypes: list[str], max_files: int = 1) -> dict:
    return {"type": "file_input", "action_id": "value", "filetypes": filetypes, "max_files": max_files}


# ---- views ---------------------------------------------------------------------------------


def modal(title: str, blocks: list[dict], *, callback_id: str | None = None, submit: str | None = None,
          close: str = "Cancel", private_metadata: str | None = None) -> dict:
    """A modal: title, submit and close cut to 24 characters, at most 100 blocks. Without
    `submit` it only shows something (Slack allows no submit when there is no input)."""
    view: dict[str, Any] = {"type": "modal"}
    if callback_id is not None:
        view["callback_id"] = callback_id
    if private_metadata is not None:
        view["private_metadata"] = private_metadata
    view["title"] = plain(title or "purelyops", 24)
    if submit is not None:
        view["submit"] = plain(submit, 24)
    view["close"] = plain(close, 24)
    view["blocks"] = blocks[:100]
    return view


def home_tab(blocks: list[dict]) -> dict:
    """The App Home tab (at most 100 blocks)."""
    return {"type": "home", "blocks": blocks[:100]}


def notice_modal(title: str, blocks: list[dict]) -> dict:
    """A modal that only tells something (no inputs, no submit): a kept-open form's outcome."""
    return modal(title, blocks, close="Close")
