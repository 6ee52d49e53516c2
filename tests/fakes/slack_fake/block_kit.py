"""Slack's Block Kit rules, checked without Slack: usable on its own, in any test.

    errors = check_message_blocks(blocks)   # [] when Slack would accept a message's blocks
    errors = check_view(view)               # [] when Slack would accept a modal or Home tab

The messages read like Slack's own ("must be less than 76 characters
[json-pointer:/blocks/0/elements/0/text/text]"). `BlockKitChecker` holds the explicit
checks (the limits in the project's Slack reference); after them each block or view is
also parsed with `slack_sdk.models`, so the SDK's own rules apply as well. This module
needs nothing but slack_sdk: no fake server, no network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS_LIMIT = 50
VIEW_BLOCKS_LIMIT = 100

SELECTS = {
    "static_select",
    "external_select",
    "users_select",
    "conversations_select",
    "channels_select",
}
MULTI_SELECTS = {"multi_" + s for s in SELECTS}
TEXT_INPUTS = {"plain_text_input", "email_text_input", "url_text_input", "number_input", "rich_text_input"}
ACTIONS_ELEMENTS = (
    {
        "button",
        "checkboxes",
        "datepicker",
        "datetimepicker",
        "overflow",
        "radio_buttons",
        "timepicker",
        "workflow_button",
    }
    | SELECTS
    | MULTI_SELECTS
)
ACCESSORY_ELEMENTS = (
    {"button", "checkboxes", "datepicker", "image", "overflow", "radio_buttons", "timepicker", "workflow_button"}
    | SELECTS
    | MULTI_SELECTS
)
INPUT_ELEMENTS = (
    {"checkboxes", "datepicker", "datetimepicker", "file_input", "radio_buttons", "timepicker"}
    | SELECTS
    | MULTI_SELECTS
    | TEXT_INPUTS
)
_SELECT_COMMON = {"action_id", "confirm", "focus_on_load", "placeholder"}
_MULTI_COMMON = _SELECT_COMMON | {"max_selected_items"}
_INPUT_COMMON = {"action_id", "initial_value", "dispatch_action_config", "focus_on_load", "placeholder"}
ELEMENT_PROPS: dict[str, set[str]] = {
    "button": {"text", "action_id", "url", "value", "style", "confirm", "accessibility_label"},
    "static_select": _SELECT_COMMON | {"options", "option_groups", "initial_option"},
    "multi_static_select": _MULTI_COMMON | {"options", "option_groups", "initial_options"},
    "external_select": _SELECT_COMMON | {"initial_option", "min_query_length"},
    "multi_external_select": _MULTI_COMMON | {"initial_options", "min_query_length"},
    "users_select": _SELECT_COMMON | {"initial_user"},
    "multi_users_select": _MULTI_COMMON | {"initial_users"},
    "conversations_select": _SELECT_COMMON
    | {"initial_conversation", "default_to_current_conversation", "response_url_enabled", "filter"},
    "multi_conversations_select": _MULTI_COMMON
    | {"initial_conversations", "default_to_current_conversation", "filter"},
    "channels_select": _SELECT_COMMON | {"initial_channel", "response_url_enabled"},
    "multi_channels_select": _MULTI_COMMON | {"initial_channels"},
    "overflow": {"action_id", "options", "confirm"},
    "datepicker": _SELECT_COMMON | {"initial_date"},
    "timepicker": _SELECT_COMMON | {"initial_time", "timezone"},
    "datetimepicker": {"action_id", "initial_date_time", "confirm", "focus_on_load"},
    "plain_text_input": _INPUT_COMMON | {"multiline", "min_length", "max_length"},
    "email_text_input": set(_INPUT_COMMON),
    "url_text_input": set(_INPUT_COMMON),
    "number_input": _INPUT_COMMON | {"is_decimal_allowed", "min_value", "max_value"},
    "rich_text_input": set(_INPUT_COMMON),
    "checkboxes": {"action_id", "options", "initial_options", "confirm", "focus_on_load"},
    "radio_buttons": {"action_id", "options", "initial_option", "confirm", "focus_on_load"},
    "image": {"image_url", "slack_file", "alt_text"},
    "file_input": {"action_id", "filetypes", "max_files"},
    "workflow_button": {"text", "workflow", "style", "accessibility_label", "action_id"},
}
BLOCK_TYPES = {
    "section",
    "divider",
    "header",
    "context",
    "actions",
    "input",
    "image",
    "rich_text",
    "markdown",
    "file",
    "video",
    "table",
    "context_actions",
}
BLOCK_PROPS: dict[str, set[str]] = {
    "section": {"text", "fields", "accessory", "expand"},
    "divider": set(),
    "header": {"text"},
    "context": {"elements"},
    "actions": {"elements"},
    "input": {"label", "element", "dispatch_action", "hint", "optional"},
    "image": {"image_url", "slack_file", "alt_text", "title"},
    "markdown": {"text"},
}
VIEW_PROPS = {
    "type",
    "title",
    "blocks",
    "close",
    "submit",
    "private_metadata",
    "callback_id",
    "clear_on_close",
    "notify_on_close",
    "external_id",
    "submit_disabled",
}


class BlockKitChecker:
    """Checks Block Kit JSON against Slack's limits and collects Slack-style messages
    ("must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]").

    The explicit checks cover the limits in the project's Slack reference; after them each
    block (or view) is also parsed with `slack_sdk.models` and `validate_json()` is run on the
    whole object tree, so the SDK's own rules apply as well."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    # -- entry points -------------------------------------------------------------------

    def message_blocks(self, blocks: Any, ptr: str = "/blocks") -> list[str]:
        """Check a message's `blocks` (at most 50)."""
        self._blocks(blocks, ptr, MESSAGE_BLOCKS_LIMIT)
        return self.errors

    def view(self, view: Any, ptr: str = "/view") -> list[str]:
        """Check a modal or Home tab view object (at most 100 blocks)."""
        if not isinstance(view, dict):
            self._err("must be an object", ptr)
            return self.errors
        vtype = view.get("type")
        if vtype not in ("modal", "home"):
            self._err(f"unsupported type: {vtype}", f"{ptr}/type")
            return self.errors
        self._props(view, VIEW_PROPS, ptr)
        if vtype == "modal":
            self._text(view.get("title"), f"{ptr}/title", plain=True, max_len=24, required=True, name="title")
        elif "title" in view:
            self._text(view.get("title"), f"{ptr}/title", plain=True, max_len=24, required=False, name="title")
        for key in ("submit", "close"):
            if key in view:
                if vtype == "home":
                    self._err(f"invalid additional property: {key}", f"{ptr}/{key}")
                else:
                    self._text(view[key], f"{ptr}/{key}", plain=True, max_len=24, required=False, name=key)
        self._str(view, "private_metadata", 3000, ptr)
        self._str(view, "callback_id", 255, ptr)
        self._str(view, "external_id", 255, ptr)
        if "blocks" not in view:
            self._err("missing required field: blocks", ptr)
        else:
            self._blocks(view["blocks"], f"{ptr}/blocks", VIEW_BLOCKS_LIMIT)
            blocks = view["blocks"] if isinstance(view["blocks"], list) else []
            if vtype == "modal" and "submit" not in view:
                for i, b in enumerate(blocks):
                    if isinstance(b, dict) and b.get("type") == "input":
                        self._err("must define `submit` to use an `input` block in modals", f"{ptr}/blocks/{i}/input")
        if not self.errors:
            self._sdk(lambda: View(**view), ptr)
        return self.errors

    def options_response(self, body: Any, ptr: str = "") -> list[str]:
        """Check the bot's answer to a block_suggestion (options for an external_select)."""
        if not isinstance(body, dict) or not ({"options", "option_groups"} & body.keys()):
            self._err("must provide `options` or `option_groups`", ptr or "/")
            return self.errors
        if "options" in body:
            self._options(body["options"], f"{ptr}/options", max_items=100, plain=True, min_items=0)
        if "option_groups" in body:
            self._option_groups(body["option_groups"], f"{ptr}/option_groups")
        return self.errors

    # -- plumbing -----------------------------------------------------------------------

    def _err(self, message: str, ptr: str) -> None:
        self.errors.append(f"{message} [json-pointer:{ptr}]")

    def _props(self, obj: dict[str, Any], allowed: set[str], ptr: str) -> None:
        for key in obj:
            if key not in allowed and key not in ("type", "block_id"):
                self._err(f"invalid additional property: {key}", f"{ptr}/{key}")

    def _str(self, obj: dict[str, Any], key: str, max_len: int, ptr: str, *, required: bool = False) -> None:
        if key not in obj or obj[key] is None:
            if required:
                self._err(f"missing required field: {key}", ptr)
            return
        value = obj[key]
        if not isinstance(value, str):
            self._err("must be a string", f"{ptr}/{key}")
        elif len(value) > max_len:
            self._err(f"must be less than {max_len + 1} characters", f"{ptr}/{key}")

    def _array(
        self, obj: dict[str, Any], key: str, ptr: str, *, min_items: int, max_items: int, required: bool = True
    ) -> list[Any]:
        if key not in obj:
            if required:
                self._err(f"missing required field: {key}", ptr)
            return []
        value = obj[key]
        if not isinstance(value, list):
            self._err("must be an array", f"{ptr}/{key}")
            return []
        if len(value) < min_items:
            self._err(f"must provide at least {min_items} items", f"{ptr}/{key}")
        if len(value) > max_items:
            self._err(f"no more than {max_items} items allowed", f"{ptr}/{key}")
        return value

    def _text(
        self,
        obj: Any,
        ptr: str,
        *,
        plain: bool = False,
        max_len: int | None = None,
        required: bool = True,
        name: str = "text",
    ) -> None:
        """A text composition object: {"type": "plain_text"|"mrkdwn", "text": ...}."""
        if obj is None:
            if required:
                parent, _, key = ptr.rpartition("/")
                self._err(f"missing required field: {key or name}", parent or "/")
            return
        if not isinstance(obj, dict):
            self._err("must be a text object", ptr)
            return
        ttype = obj.get("type")
        if ttype not in ("plain_text", "mrkdwn"):
            self._err("must be a valid text object type (plain_text or mrkdwn)", f"{ptr}/type")
            return
        if plain and ttype != "plain_text":
            self._err("must be a `plain_text` text object", f"{ptr}/type")
        allowed = {"text", "emoji"} if ttype == "plain_text" else {"text", "verbatim"}
        self._props(obj, allowed, ptr)
        text = obj.get("text")
        if text is None:
            self._err("missing required field: text", ptr)
        elif not isinstance(text, str):
            self._err("must be a string", f"{ptr}/text")
        elif len(text) == 0:
            self._err("must be more than 0 characters", f"{ptr}/text")
        elif max_len is not None and len(text) > max_len:
            self._err(f"must be less than {max_len + 1} characters", f"{ptr}/text")

    def _sdk(self, build: Callable[[], Any], ptr: str) -> None:
        """Parse with slack_sdk's model classes and run every `validate_json()` in the tree."""
        try:
            obj = build()
            if obj is None:
                self._err("unsupported block", ptr)
                return
            self._sdk_walk(obj)
        except Exception as exc:  # noqa: BLE001 - any SDK complaint is a rejection
            self._err(f"{exc}", ptr)

    def _sdk_walk(self, obj: Any) -> None:
        if isinstance(obj, JsonObject):
            obj.validate_json()
            for attr in sorted(obj.attributes):
                self._sdk_walk(getattr(obj, attr, None))
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                self._sdk_walk(item)

    # -- blocks -------------------------------------------------------------------------

    def _blocks(self, blocks: Any, ptr: str, limit: int) -> None:
        if not isinstance(blocks, list):
            self._err("must be an array", ptr)
            return
        if len(blocks) > limit:
            self._err(f"no more than {limit} items allowed", ptr)
        seen: dict[str, int] = {}
        for i, block in enumerate(blocks):
            bptr = f"{ptr}/{i}"
            before = len(self.errors)
            self._block(block, bptr)
            if isinstance(block, dict) and isinstance(block.get("block_id"), str):
                bid = block["block_id"]
                if bid in seen:
                    # guess: Slack's exact wording for a repeated block_id
                    self._err(f"duplicate block_id `{bid}` (also in block {seen[bid]})", f"{bptr}/block_id")
                seen.setdefault(bid, i)
            if len(self.errors) == before and isinstance(block, dict) and block.get("type") in BLOCK_TYPES:
                self._sdk(lambda b=block: Block.parse(b), bptr)

    def _block(self, block: Any, ptr: str) -> None:
        if not isinstance(block, dict):
            self._err("must be an object", ptr)
            return
        btype = block.get("type")
        if btype is None:
            self._err("missing required field: type", ptr)
            return
        if btype not in BLOCK_TYPES:
            self._err(f"unsupported type: {btype}", f"{ptr}/type")
            return
        if btype in BLOCK_PROPS:
            self._props(block, BLOCK_PROPS[btype], ptr)
        self._str(block, "block_id", 255, ptr)
        check = getattr(self, f"_block_{btype}", None)
        if check is not None:
            check(block, ptr)

    def _block_section(self, block: dict[str, Any], ptr: str) -> None:
        if "text" not in block and "fields" not in block:
            self._err("must define either `text` or `fields`", ptr)
        if "text" in block:
            self._text(block["text"], f"{ptr}/text", max_len=3000)
        fields = self._array(block, "fields", ptr, min_items=1, max_items=10, required=False)
        for i, f in enumerate(fields):
            self._text(f, f"{ptr}/fields/{i}", max_len=2000)
        if "accessory" in block:
            self._element(block["accessory"], f"{ptr}/accessory", ACCESSORY_ELEMENTS, set())

    def _block_header(self, block: dict[str, Any], ptr: str) -> None:
        self._text(block.get("text"), f"{ptr}/text", plain=True, max_len=150)

    def _block_context(self, block: dict[str, Any], ptr: str) -> None:
        for i, el in enumerate(self._array(block, "elements", ptr, min_items=1, max_items=10)):
            eptr = f"{ptr}/elements/{i}"
            if isinstance(el, dict) and el.get("type") in ("plain_text", "mrkdwn"):
                self._text(el, eptr, max_len=3000)
            else:
                self._element(el, eptr, {"image"}, set())

    def _block_actions(self, block: dict[str, Any], ptr: str) -> None:
        action_ids: set[str] = set()
        for i, el in enumerate(self._array(block, "elements", ptr, min_items=1, max_items=25)):
            self._element(el, f"{ptr}/elements/{i}", ACTIONS_ELEMENTS, action_ids)

    def _block_input(self, block: dict[str, Any], ptr: str) -> None:
        self._text(block.get("label"), f"{ptr}/label", plain=True, max_len=2000)
        if "hint" in block:
            self._text(block["hint"], f"{ptr}/hint", plain=True, max_len=2000)
        if "element" not in block:
            self._err("missing required field: element", ptr)
        else:
            self._element(block["element"], f"{ptr}/element", INPUT_ELEMENTS, set())

    def _block_image(self, block: dict[str, Any], ptr: str) -> None:
        if "image_url" not in block and "slack_file" not in block:
            self._err("must define either `image_url` or `slack_file`", ptr)
        self._str(block, "image_url", 3000, ptr)
        self._str(block, "alt_text", 2000, ptr, required=True)
        if "title" in block:
            self._text(block["title"], f"{ptr}/title", plain=True, max_len=2000)

    def _block_markdown(self, block: dict[str, Any], ptr: str) -> None:
        self._str(block, "text", 12_000, ptr, required=True)

    # -- elements -----------------------------------------------------------------------

    def _element(self, el: Any, ptr: str, allowed: set[str], action_ids: set[str]) -> None:
        if not isinstance(el, dict):
            self._err("must be an object", ptr)
            return
        etype = el.get("type")
        if etype not in ELEMENT_PROPS:
            self._err(f"unsupported type: {etype}", f"{ptr}/type")
            return
        if etype not in allowed:
            self._err(f"unsupported type: {etype} (not allowed in this block)", f"{ptr}/type")
            return
        self._props(el, ELEMENT_PROPS[etype], ptr)
        self._str(el, "action_id", 255, ptr)
        action_id = el.get("action_id")
        if isinstance(action_id, str):
            if action_id in action_ids:
                # guess: Slack's exact wording for a repeated action_id
                self._err(f"duplicate action_id `{action_id}` in this block", f"{ptr}/action_id")
            action_ids.add(action_id)
        if "placeholder" in el:
            self._text(el["placeholder"], f"{ptr}/placeholder", plain=True, max_len=150)
        if "confirm" in el:
            self._confirm(el["confirm"], f"{ptr}/confirm")
        if etype == "button":
            self._text(el.get("text"), f"{ptr}/text", plain=True, max_len=75)
            self._str(el, "value", 2000, ptr)
            self._str(el, "url", 3000, ptr)
            self._str(el, "accessibility_label", 75, ptr)
            if "style" in el and el["style"] not in ("primary", "danger"):
                self._err("must be one of `primary`, `danger`", f"{ptr}/style")
        elif etype in ("static_select", "multi_static_select"):
            if ("options" in el) == ("option_groups" in el):
                self._err("must provide exactly one of `options` or `option_groups`", ptr)
            if "options" in el:
                self._options(el["options"], f"{ptr}/options", max_items=100, plain=True)
            if "option_groups" in el:
                self._option_groups(el["option_groups"], f"{ptr}/option_groups")
        elif etype == "overflow":
            self._options(el.get("options"), f"{ptr}/options", max_items=5, plain=True, url_ok=True)
        elif etype in ("checkboxes", "radio_buttons"):
            self._options(el.get("options"), f"{ptr}/options", max_items=10, plain=False)
        elif etype == "plain_text_input":
            for key in ("min_length", "max_length"):
                value = el.get(key)
                if value is not None and (not isinstance(value, int) or not 0 <= value <= 3000):
                    self._err("must be an integer from 0 to 3000", f"{ptr}/{key}")
            if isinstance(el.get("max_length"), int) and el["max_length"] < 1:
                self._err("must be at least 1", f"{ptr}/max_length")
            self._str(el, "initial_value", 3000, ptr)
        elif etype == "image":
            self._str(el, "image_url", 3000, ptr)
            self._str(el, "alt_text", 2000, ptr, required=True)

    def _options(
        self, options: Any, ptr: str, *, max_items: int, plain: bool, url_ok: bool = False, min_items: int = 1
    ) -> None:
        if options is None:
            parent, _, key = ptr.rpartition("/")
            self._err(f"missing required field: {key}", parent)
            return
        if not isinstance(options, list):
            self._err("must be an array", ptr)
            return
        if len(options) < min_items:
            self._err(f"must provide at least {min_items} items", ptr)
        if len(options) > max_items:
            self._err(f"no more than {max_items} items allowed", ptr)
        for i, opt in enumerate(options):
            optr = f"{ptr}/{i}"
            if not isinstance(opt, dict):
                self._err("must be an object", optr)
                continue
            self._props(opt, {"text", "value", "description"} | ({"url"} if url_ok else set()), optr)
            self._text(opt.get("text"), f"{optr}/text", plain=plain, max_len=75)
            self._str(opt, "value", 150, optr, required=True)
            if "description" in opt:
                self._text(opt["description"], f"{optr}/description", plain=plain, max_len=75)
            self._str(opt, "url", 3000, optr)

    def _option_groups(self, groups: Any, ptr: str) -> None:
        if not isinstance(groups, list):
            self._err("must be an array", ptr)
            return
        if len(groups) > 100:
            self._err("no more than 100 items allowed", ptr)
        for i, group in enumerate(groups):
            gptr = f"{ptr}/{i}"
            if not isinstance(group, dict):
                self._err("must be an object", gptr)
                continue
            self._props(group, {"label", "options"}, gptr)
            self._text(group.get("label"), f"{gptr}/label", plain=True, max_len=75)
            self._options(group.get("options"), f"{gptr}/options", max_items=100, plain=True)

    def _confirm(self, confirm: Any, ptr: str) -> None:
        if not isinstance(confirm, dict):
            self._err("must be an object", ptr)
            return
        self._props(confirm, {"title", "text", "confirm", "deny", "style"}, ptr)
        self._text(confirm.get("title"), f"{ptr}/title", plain=True, max_len=100)
        self._text(confirm.get("text"), f"{ptr}/text", max_len=300)
        self._text(confirm.get("confirm"), f"{ptr}/confirm", plain=True, max_len=30)
        self._text(confirm.get("deny"), f"{ptr}/deny", plain=True, max_len=30)
        if "style" in confirm and confirm["style"] not in ("primary", "danger"):
            self._err("must be one of `primary`, `danger`", f"{ptr}/style")


def check_message_blocks(blocks: Any) -> list[str]:
    """Slack-style error messages for a message's blocks; empty when Slack would accept them."""
    return BlockKitChecker().message_blocks(blocks)


def check_view(view: Any) -> list[str]:
    """Slack-style error messages for a modal or Home tab view; empty when Slack would accept it."""
    return BlockKitChecker().view(view)


def find_element(
    blocks: list[dict[str, Any]] | None, action_id: str, block_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The (block, element) carrying `action_id` in a list of blocks, or None."""
    for block in blocks or []:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        candidates: list[Any] = []
        if block.get("type") == "actions":
            candidates = list(block.get("elements") or [])
        elif block.get("type") == "section" and block.get("accessory"):
            candidates = [block["accessory"]]
        elif block.get("type") == "input" and block.get("element"):
            candidates = [block["element"]]
        for el in candidates:
            if isinstance(el, dict) and el.get("action_id") == action_id:
                return block, el
    return None
