"""Make InfluxDB 3 match the provisioning file, in the only order that works.

Databases, then tables (a WAL trigger created before its table exists never fires), then the plugins'
packages (a trigger whose plugin imports a missing package fails on its first call) and the proof that they
import at their pinned versions inside the engine (the server answers 200 to an install whatever pip did),
then triggers, created and then enabled (or disabled) to match the file. Everything already there is left
alone. Last, the bootstrap requests fill a new stack's empty tables through the plugins' own endpoints.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from common.config import parse_duration
from common.retention import RAW, RAW_RETENTION_VARIABLE, spelled
from influxdb3_init.client import InfluxDB3Admin, Outcome, ProvisionError
from influxdb3_init.spec import CORE_DATABASE_LIMIT, Database, Provision, Trigger, plugin_url

__all__ = ["Summary", "provision"]

log = logging.getLogger("influxdb3-init")


@dataclass
class Summary:
    counts: Counter = field(default_factory=Counter)

    def add(self, kind: str, outcome: Outcome) -> None:
        self.counts[(kind, outcome.value)] += 1

    def __str__(self) -> str:
        parts = [f"{kind}s {outcome}: {count}" for (kind, outcome), count in sorted(self.counts.items())]
        return ", ".join(parts) or "nothing to do"


def _check_database_limit(existing: list[str], spec: Provision) -> None:
    users = {name for name in existing if not name.startswith("_")}
    wanted = users | {db.name for db in spec.databases}
    if len(wanted) > CORE_DATABASE_LIMIT:
        raise ProvisionError(
            f"InfluxDB 3 Core allows {CORE_DATABASE_LIMIT} databases; the server has {sorted(users)} and "
            f"plugins/provision.yaml adds {sorted(wanted - users)}. Delete a database you no longer need "
            "(DELETE /api/v3/configure/database?db=...) or list fewer.")


def _drift(row: dict[str, Any], trigger: Trigger) -> list[str]:
    """How an existing trigger differs from the file: plugin, error behaviour (3.10 lists it), arguments."""
    differences = []
    if not str(row.get("plugin_filename", "")).endswith(trigger.plugin.rstrip("/")):
        differences.append(f"plugin {row.get('plugin_filename')!r} (file says {trigger.plugin!r})")
    if row.get("error_behavior") not in (None, trigger.error_behavior):
        differences.append(f"error_behavior {row.get('error_behavior')!r} (file says {trigger.error_behavior!r})")
    if row.get("arguments", {}) != dict(trigger.arguments):
        differences.append(f"arguments {row.get('arguments')} (file says {dict(trigger.arguments)})")
    return differences


def _bootstrap(spec: Provision, admin: InfluxDB3Admin, timeout: float, summary: Summary) -> None:
    """Fill a new stack's tables through the plugins' own endpoints; never fatal, never repeated. The requests
    build on each other (load, then forecast): after one fails, the rest wait for the next start."""
    for index, step in enumerate(spec.bootstrap):
        if step.unless_rows_in:
            try:
                rows = admin.count_rows(step.database, step.unless_rows_in)
            except ProvisionError as exc:
                log.warning("bootstrap %s skipped: cannot count %s: %s", step.request, step.unless_rows_in, exc)
                continue
            if rows:
                log.info("bootstrap %s: skipped, %s.%s already has %d rows", step.request, step.database,
                         step.unless_rows_in, rows)
                summary.add("bootstrap request", Outcome.EXISTS)
                continue
        log.info("bootstrap %s: POST /api/v3/engine/%s", step.request, step.request)
        try:
            answer = admin.call_endpoint(step.request, timeout)
        except ProvisionError as exc:
            later = ", ".join(later.request for later in spec.bootstrap[index + 1:])
            log.warning("bootstrap %s failed (the stack works; the data comes later): %s%s", step.request, exc,
                        f"; not sent now, as they build on it: {later}" if later else "")
            return
        summary.add("bootstrap request", Outcome.DONE)
        log.info("bootstrap %s: %s", step.request, answer)


def _wanted(database: Database, raw: timedelta | None) -> timedelta | None:
    if database.retention == RAW:
        return raw
    return None if database.retention is None else parse_duration(database.retention)


def _match_retention(admin: InfluxDB3Admin, database: Database, wanted: timedelta | None, current_ns: int | None,
                     tables: set[str], force: bool, now_ns: int) -> Outcome:
    """Give an existing database the file's retention. A longer one (or none) hides nothing and is set at once; a
    shorter one only when no row is older than its cutoff, or with `force`: from the moment it is set, every query
    leaves out the older rows, so a stack that holds history in a live database keeps what it has, and says so."""
    wanted_ns = None if wanted is None else int(wanted.total_seconds()) * 10**9
    if wanted_ns == current_ns:
        return Outcome.EXISTS
    current = spelled(None if current_ns is None else timedelta(seconds=current_ns / 10**9))
    if wanted_ns is not None and (current_ns is None or wanted_ns < current_ns) and not force:
        cutoff = now_ns - wanted_ns
        older = sorted(table for table in tables if admin.holds_rows_before(database.name, table, cutoff))
        if older:
            log.warning("database %s keeps its retention (%s): %s hold rows from before %s, which a retention of %s "
                        "would hide at once. Load history into the history database (e.g. the bird study: docker "
                        "compose exec ingest python -m ingest birds); the rollup triggers (recreated once with "
                        "PROVISION_RECREATE_TRIGGERS=true) copy the rollups there, oldest first. Then set "
                        "%s_FORCE=true for one start (or %s=none to keep everything)", database.name, current,
                        ", ".join(older),
                        datetime.fromtimestamp(cutoff / 10**9, UTC).strftime("%Y-%m-%d"), spelled(wanted),
                        RAW_RETENTION_VARIABLE, RAW_RETENTION_VARIABLE)
            return Outcome.EXISTS
    outcome = admin.set_retention(database.name, None if wanted is None else spelled(wanted))
    log.info("database %s: retention %s (was %s)", database.name, spelled(wanted), current)
    return outcome


def provision(spec: Provision, admin: InfluxDB3Admin, *, recreate_triggers: bool = False,
              bootstrap_timeout: float = 600.0, plugin_repo: str | None = None, raw_retention: timedelta | None = None,
              force_retention: bool = False) -> Summary:
    summary = Summary()
    admin.wait_healthy()
    existing = admin.list_databases()
    _check_database_limit(existing, spec)

    # What exists is looked up first and left alone: a create of an existing resource answers 409, which the
    # server logs as an ERROR line on every start. Its retention is brought to the file's when that is safe.
    managed = [database for database in spec.databases if database.retention is not None]
    current = admin.retentions() if any(database.name in existing for database in managed) else {}
    for database in spec.databases:
        wanted = _wanted(database, raw_retention)
        if database.name not in existing:
            outcome = admin.create_database(database.name, None if wanted is None else spelled(wanted))
        elif database.retention is None:
            outcome = Outcome.EXISTS
        else:
            outcome = _match_retention(admin, database, wanted, current.get(database.name),
                                       admin.tables(database.name), force_retention, time.time_ns())
        summary.add("database", outcome)
        if database.retention is None and database.name in existing:  # its retention is not ours to know or set
            log.info("database %s: %s", database.name, outcome.value)
        else:
            log.info("database %s: %s (retention %s)", database.name, outcome.value, spelled(wanted))

    tables = {db: admin.tables(db) for db in {table.database for table in spec.tables}}
    for table in spec.tables:
        fields = [{"name": name, "type": kind} for name, kind in table.fields]
        outcome = Outcome.EXISTS if table.name in tables[table.database] else admin.create_table(
            table.database, table.name, list(table.tags), fields)
        summary.add("table", outcome)
        log.info("table %s.%s: %s", table.database, table.name, outcome.value)

    if spec.packages:
        log.info("installing %d plugin packages into the engine's environment (first run can take minutes): %s",
                 len(spec.packages), " ".join(spec.packages))
        summary.add("package set", admin.install_packages(list(spec.packages)))
        log.info("the server accepted the package install; checking inside the engine that each package imports")
    present = {db: admin.triggers(db) for db in {trigger.database for trigger in spec.triggers}}
    checked = spec.packages_check
    if checked is not None:
        _create_trigger(admin, checked, recreate_triggers, summary, present[checked.database])
        _check_packages(admin, checked, spec.packages)

    for trigger in spec.triggers:
        if trigger is checked:
            continue
        _create_trigger(admin, trigger, recreate_triggers, summary, present[trigger.database], plugin_repo)
    _bootstrap(spec, admin, bootstrap_timeout, summary)
    return summary


def _create_community(admin: InfluxDB3Admin, trigger: Trigger, repo: str | None) -> Outcome:
    """Create a `gh:` trigger; SKIPPED when the server could not download its plugin. The server fetches it once,
    answering 500 "Plugin error: error getting plugin from repository" (no connection) or "... error fetching
    plugin from repository: <status> <url>" (lib.rs `read_plugin_code`, http.rs, v3.10.1): the stack works
    without it, so that is one warning, not a failed start."""
    url = plugin_url(trigger.plugin, repo)
    try:
        outcome = admin.create_trigger(trigger.request_body(), retry=False)
    except ProvisionError as exc:
        if "from repository" not in str(exc):
            raise
        log.warning("trigger %s not created: InfluxDB 3 could not download %s from %s (%s). The stack runs without "
                    "it. Give the influxdb3 container access to that address, or set INFLUXDB3_PLUGIN_REPO to a "
                    "mirror that serves the file, then run `docker compose up influxdb3-init`",
                    trigger.name, trigger.plugin, url, exc)
        return Outcome.SKIPPED
    log.info("trigger %s: plugin downloaded by the server from %s", trigger.name, url)
    return outcome


def _create_trigger(admin: InfluxDB3Admin, trigger: Trigger, recreate: bool, summary: Summary,
                    present: dict[str, dict[str, Any]], repo: str | None = None) -> None:
    row = present.get(trigger.name)
    if recreate and row is not None:
        admin.delete_trigger(trigger.database, trigger.name)
        row = None
    if row is not None:
        outcome = Outcome.EXISTS
    elif trigger.community:
        outcome = _create_community(admin, trigger, repo)
    else:
        outcome = admin.create_trigger(trigger.request_body())
    summary.add("trigger", outcome)
    if outcome is Outcome.SKIPPED:
        return
    log.info("trigger %s (%s on %s): %s", trigger.name, trigger.spec, trigger.database, outcome.value)
    if row is not None:
        differences = _drift(row, trigger)
        if differences:
            log.warning("trigger %s already exists with %s; set PROVISION_RECREATE_TRIGGERS=true and run "
                        "`docker compose up influxdb3-init` to recreate it from the file",
                        trigger.name, "; ".join(differences))
        if trigger.disabled and not row.get("disabled"):
            admin.disable_trigger(trigger.database, trigger.name)
    if not trigger.disabled and (row is None or row.get("disabled")):
        admin.enable_trigger(trigger.database, trigger.name)
        log.info("trigger %s: enabled", trigger.name)


def _check_packages(admin: InfluxDB3Admin, check: Trigger, packages: tuple[str, ...]) -> None:
    """Ask the engine's own interpreter to import every pinned package; stop with what is missing and why."""
    path = check.spec.removeprefix("request:")
    try:
        answer = admin.call_endpoint(path, 300.0, body={"packages": list(packages)})
    except ProvisionError as exc:
        raise ProvisionError(f"could not check the plugin packages inside the engine ({exc})") from exc
    results = answer.get("packages") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise ProvisionError(f"the packages check answered {answer!r}, not a package list")
    failed = [item for item in results if not item.get("ok")]
    for item in results:
        log.info("package %s: %s", item.get("pin"), "imports" if item.get("ok") else item.get("problem"))
    if failed:
        missing = "; ".join(f"{item.get('pin')}: {item.get('problem')}" for item in failed)
        raise ProvisionError(
            f"{len(failed)} of {len(results)} plugin packages are not usable inside InfluxDB 3's engine "
            f"(Python {answer.get('python', '?')}): {missing}. InfluxDB 3 answers 200 to a package install even "
            "when pip fails, so nothing was installed: the influxdb3 container needs access to PyPI (or set "
            "PIP_INDEX_URL on it for a mirror), and every pin in plugins/requirements.txt needs a wheel for the "
            "engine's Python. Fix that and run `docker compose up influxdb3-init` again.")
    log.info("all %d plugin packages import at their pinned versions inside the engine", len(results))
