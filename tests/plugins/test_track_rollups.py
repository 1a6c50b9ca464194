"""Track summaries (the rollups plugin with `kind: tracks`, plugins/stacklib/tracks.py) on the local engine: every
hourly, daily and weekly row equals what the raw fixes say for its bucket (fixes, outliers, km and hours flown
between consecutive good fixes, first and last good position, newest outlier), computed here in Python."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from tests.engine import LocalEngine
from tests.plugins.trackdata import DAY, HOUR, START, differences, expected, fixes

PLUGIN, DB, TABLE = "history/rollups", "telemetry", "bird_fixes"
ARGS = {"tables": TABLE, "levels": "1h 1d 7d", "kind": "tracks", "by": "species individual", "max_files": "5000"}
WIDTHS = {"1h": HOUR, "1d": DAY, "7d": 7 * DAY}


@pytest.fixture(scope="module")
def summarized() -> tuple[LocalEngine, pd.DataFrame]:
    frame = fixes()
    engine = LocalEngine()
    engine.create_database(DB)
    engine.load_frame(DB, TABLE, frame, tags=("species", "individual"))
    when = datetime.fromtimestamp((START + 40 * DAY) / 10**9, UTC).replace(tzinfo=None)
    for _ in range(4):
        engine.run_schedule(PLUGIN, DB, when, args=ARGS).raise_for_error()
    return engine, frame


@pytest.mark.parametrize("level", list(WIDTHS))
def test_every_summary_row_is_what_the_fixes_say(summarized, level):
    engine, frame = summarized
    rows = engine.query(DB, f"SELECT * FROM {TABLE}_{level} ORDER BY time, individual")
    assert not differences(rows, expected(frame, WIDTHS[level]))
    species = {row["individual"]: row["species"] for row in rows}
    assert species == {"Ada": "Larus fuscus", "Bo": "Ciconia ciconia"}


def test_a_table_without_positions_is_refused_with_its_columns_named():
    engine = LocalEngine()
    engine.create_database(DB)
    engine.load_frame(DB, TABLE, pd.DataFrame({"time": [START], "individual": ["Ada"], "lat": [52.0]}),
                      tags=("individual",))
    run = engine.run_schedule(PLUGIN, DB, datetime(2018, 10, 1), args={**ARGS, "by": "individual"})
    assert "bird_fixes has no column lon, outlier, visible (kind tracks)" in " ".join(run.messages())
