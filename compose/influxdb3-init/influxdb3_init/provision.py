"""Make InfluxDB 3 match the provisioning file, in the only order that works.

Databases, then tables (a WAL trigger created before its table exists never fires), then the plugins'
packages (a trigger whose plugin imports a missing package fails on its first call) and the proof that they
import at their pinned versions inside the engine (the server answers 200 to an install whatever pip did),
then triggers, created and then enabled (or disabled) to match the file. Everything already there is left
alone. Last, the bootstrap requests fill a new stack's empty tables through the plugins' own endpoints.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from influxdb3_init.client import InfluxDB3Admin, Outcome, ProvisionError
from influxdb3_init.spec import CORE_DATABASE_LIMIT, Provision, Trigger

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


def _warn_on_drift(admin: InfluxDB3Admin, trigger: Trigger) -> None:
    """An existing trigger is kept as is; say so when what the server shows differs from the file."""
    try:
        rows = admin.triggers(trigger.database)
    except ProvisionError as exc:
        log.debug("could not read system.processing_engine_triggers: %s", exc)
        return
    row = next((r for r in rows if r.get("trigger_name") == trigger.name), None)
    if row is None:
        return
    differences = []
    if not str(row.get("plugin_filename", "")).endswith(trigger.plugin):
        differences.append(f"plugin {row.get('plugin_filename')!r} (file says {trigger.plugin!r})")
    if row.get("error_behavior") not in (None, trigger.error_behavior):
        differences.append(f"error_behavior {row.get('error_behavior')!r} (file says {trigger.error_behavior!r})")
    if differences:
        log.warning("trigger %s already exists with %s; set PROVISION_RECREATE_TRIGGERS=true and run "
                    "`docker compose up influxdb3-init` to recreate it from the file",
                    trigger.name, "; ".join(differences))


def _bootstrap(spec: Provision, admin: InfluxDB3Admin, timeout: float, summary: Summary) -> None:
    """Fill a new stack's tables through the plugins' own endpoints; never fatal, never repeated."""
    for step in spec.bootstrap:
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
            log.warning("bootstrap %s failed (the stack works; the data comes later): %s", step.request, exc)
            continue
        summary.add("bootstrap request", Outcome.DONE)
        log.info("bootstrap %s: %s", step.request, answer)


def provision(spec: Provision, admin: InfluxDB3Admin, *, recreate_triggers: bool = False,
              bootstrap_timeout: float = 600.0) -> Summary:
    summary = Summary()
    admin.wait_healthy()
    existing = admin.list_databases()
    _check_database_limit(existing, spec)

    for database in spec.databases:
        outcome = admin.create_database(database.name, database.retention)
        summary.add("database", outcome)
        log.info("database %s: %s", database.name, outcome.value)

    for table in spec.tables:
        fields = [{"name": name, "type": kind} for name, kind in table.fields]
        outcome = admin.create_table(table.database, table.name, list(table.tags), fields)
        summary.add("table", outcome)
        log.info("table %s.%s: %s", table.database, table.name, outcome.value)

    if spec.packages:
        log.info("installing %d plugin packages into the engine's environment (first run can take minutes): %s",
                 len(spec.packages), " ".join(spec.packages))
        summary.add("package set", admin.install_packages(list(spec.packages)))
        log.info("the server accepted the package install; checking inside the engine that each package imports")
    checked = spec.packages_check
    if checked is not None:
        _create_trigger(admin, checked, recreate_triggers, summary)
        _check_packages(admin, checked, spec.packages)

    for trigger in spec.triggers:
        if trigger is checked:
            continue
        _create_trigger(admin, trigger, recreate_triggers, summary)
    _bootstrap(spec, admin, bootstrap_timeout, summary)
    return summary


def _create_trigger(admin: InfluxDB3Admin, trigger: Trigger, recreate: bool, summary: Summary) -> None:
    if recreate:
        admin.delete_trigger(trigger.database, trigger.name)
    outcome = admin.create_trigger(trigger.request_body())
    summary.add("trigger", outcome)
    log.info("trigger %s (%s on %s): %s", trigger.name, trigger.spec, trigger.database, outcome.value)
    if outcome is Outcome.EXISTS:
        _warn_on_drift(admin, trigger)
        if trigger.disabled:
            admin.disable_trigger(trigger.database, trigger.name)
    if not trigger.disabled:
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
