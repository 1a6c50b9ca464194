"""All alerting provisioning files from the rules, contact points and policy (used by grafana/generate.py)."""

from __future__ import annotations

from types import ModuleType

from grafana_foundation_sdk.builders import alerting as alerting_builders
from grafana_foundation_sdk.models import alerting, dashboard

from grafana.alerting import files, notifications
from grafana.alerting.rules import FOLDER, GROUPS, Rule, rules, sdk_rule
from grafana.alerting.settings import DEFAULTS, Settings

__all__ = ["FILES", "generated", "panel_id"]

RULES_FILE, CONTACT_POINTS_FILE, POLICIES_FILE = "rules.yaml", "contact-points.yaml", "policies.yaml"
FILES = (RULES_FILE, CONTACT_POINTS_FILE, POLICIES_FILE)


def _panel_titles(board: ModuleType, settings: Settings) -> dict[str, int | None]:
    """Title -> id of every titled panel on the dashboard `board` builds."""
    built: dashboard.Dashboard = board.build(settings)
    return {panel.title: panel.id_val for panel in built.panels or [] if getattr(panel, "title", None)}


def _find_panel(board: ModuleType, titles: dict[str, int | None], title: str) -> int:
    if title not in titles:
        raise KeyError(f"dashboard {board.UID!r} has no panel {title!r} (panels: {', '.join(sorted(titles))})")
    return int(titles[title])


def panel_id(board: ModuleType, title: str, settings: Settings = DEFAULTS) -> int:
    """The id of the panel called `title` on a generated dashboard; KeyError lists the titles there are."""
    return _find_panel(board, _panel_titles(board, settings), title)


def _groups(found: list[Rule], settings: Settings) -> list[tuple[alerting.RuleGroup, str]]:
    """The rules in their groups (declared order), each with the folder it goes in; uids must be unique."""
    unknown = {rule.group for rule in found} - set(GROUPS)
    if unknown:
        raise ValueError(f"rules name undeclared groups {sorted(unknown)} (GROUPS in grafana/alerting/rules.py)")
    uids = [rule.uid for rule in found]
    if len(set(uids)) != len(uids):
        raise ValueError(f"two rules share a uid: {sorted({uid for uid in uids if uids.count(uid) > 1})}")
    titles: dict[str, dict[str, int | None]] = {}  # board UID -> its panels' title -> id: each board built once

    def cached_panel(board: ModuleType, title: str) -> int:
        if board.UID not in titles:
            titles[board.UID] = _panel_titles(board, settings)
        return _find_panel(board, titles[board.UID], title)

    out = []
    for name, multiple in GROUPS.items():
        members = [rule for rule in found if rule.group == name]
        if not members:
            continue
        group = (alerting_builders.RuleGroup(name).interval(int(settings.evaluation_interval) * multiple)
                 .rules([sdk_rule(rule, settings, cached_panel) for rule in members]).build())
        out.append((group, FOLDER))
    return out


def generated(settings: Settings = DEFAULTS) -> dict[str, str]:
    """File name -> YAML text of every alerting provisioning file."""
    return {
        RULES_FILE: files.render(files.rules_file(_groups(rules(settings), settings))),
        CONTACT_POINTS_FILE: files.render(files.contact_points_file(notifications.contact_points())),
        POLICIES_FILE: files.render(files.policies_file(notifications.policy(settings))),
    }
