"""Service-task actions: the side effects task workers perform."""

from infrastructure.actions.http import HttpAction
from infrastructure.actions.noop import noop_action
from infrastructure.actions.registry import ENTRY_POINT_GROUP, ActionHandler, ActionRegistry

__all__ = ["ENTRY_POINT_GROUP", "ActionHandler", "ActionRegistry", "HttpAction", "noop_action"]
