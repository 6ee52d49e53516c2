"""Who may do what. Admins change things; viewers may look. There is no open mode.

Admins are ADMIN_USER_IDS plus the members of ADMIN_USERGROUP_ID. Viewers are
VIEWER_USER_IDS plus the members of VIEWER_USERGROUP_ID; when neither is set, only
admins may look either. User-group members are read from Slack and cached in Redis.
"""

from __future__ import annotations

import json
import logging
from enum import Enum

import redis
from slack_sdk.errors import SlackClientError

from purelyops import audit
from purelyops.errors import Refused
from purelyops.failures import failure_reason
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)
GROUP_CACHE_SECONDS = 300


class Role(str, Enum):
    VIEWER = "viewer"
    ADMIN = "admin"


class RoleUnknown(Exception):
    """Slack could not tell us who is in a user group, so the role is unknown."""


class NotAllowed(Refused):
    """The user lacks the role an action needs; the message says who can."""


def _group_members(rt: Runtime, group_id: str) -> set[str]:
    key = f"purelyops:usergroup:{group_id}"
    try:
        cached = rt.redis.get(key)
        if cached is not None:
            return set(json.loads(cached))
    except redis.RedisError:
        cached = None  # the cache is an optimisation; ask Slack
    try:
        members = rt.slack.usergroups_users_list(usergroup=group_id)["users"]
    except SlackClientError as error:  # SlackApiError is one too
        log.warning("usergroups.users.list %s failed: %s", group_id, failure_reason(error))
        raise RoleUnknown(
            "Slack did not say who is in the admin user group, so I can't check your role. Try again in a minute."
        ) from None
    try:
        rt.redis.set(key, json.dumps(members), ex=GROUP_CACHE_SECONDS)
    except redis.RedisError:
        pass
    return set(members)


def is_admin(rt: Runtime, user_id: str) -> bool:
    settings = rt.settings
    if user_id in settings.admin_user_ids:
        return True
    return bool(settings.admin_usergroup_id) and user_id in _group_members(rt, settings.admin_usergroup_id)


def has_role(rt: Runtime, user_id: str, role: Role) -> bool:
    if is_admin(rt, user_id):
        return True
    if role is Role.ADMIN:
        return False
    settings = rt.settings
    if user_id in settings.viewer_user_ids:
        return True
    return bool(settings.viewer_usergroup_id) and user_id in _group_members(rt, settings.viewer_usergroup_id)


def refusal(role: Role, what: str) -> str:
    if role is Role.ADMIN:
        return f"Only purelyops admins can {what}. Ask an admin to add you to ADMIN_USER_IDS or the admin user group."
    return f"Only purelyops viewers and admins can {what}. Ask an admin for access."


def require(rt: Runtime, user_id: str, user_name: str, role: Role, what: str, *, target: str) -> None:
    """Nothing when the user has `role`; otherwise the refusal is audited under `target`
    and NotAllowed says who can `what`."""
    if not has_role(rt, user_id, role):
        audit.record_now(rt, actor_id=user_id, actor_name=user_name, action="refused", target=target,
                         result="refused", detail=f"needs {role.value}")
        raise NotAllowed(refusal(role, what))
