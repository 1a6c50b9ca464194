"""Track summaries (the rollups plugin with `kind: tracks`, plugins/stacklib/tracks.py) on the local engine: every
hourly, daily and weekly row equals what the raw fixes say for its bucket (fixes, outliers, km and hours flown
between consecutive good fixes, first and last good position, newest outlier), computed here in Python."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from plugins.stacklib.tracks import EARTH_RADIUS_KM, TRACK_COLUMNS
from tests.engine import LocalEngine

PLUGIN, DB, TABLE = "history/rollups", "telemetry", "bird_fixes"
HOUR, DAY = 3_600 * 10**9, 86_400 * 10**9
START = 17_775 * DAY  # 2018-08-30, a Thursday: weeks since the epoch start on Thursdays
ARGS = {"tables": TABLE, "levels": "1h 1d 7d", "kind": "tracks", "by": "species individual", "max_files": "5000"}
WIDTHS = {"1h": HOUR, "1d": DAY, "7d": 7 * DAY}


def fixes(days: int = 24, seed: int = 3) -> pd.DataFrame:
    """Two birds' GPS fixes every 5-40 minutes with silent spells of hours to days, some marked outliers, some hidden
    (visible false), some without a position, flags sometimes missing (null), as Movebank exports them."""
    rng = np.random.default_rng(seed)
    frames = []
    for individual, species in (("Ada", "Larus fuscus"), ("Bo", "Ciconia ciconia")):
        steps = rng.integers(5, 40, size=days * 60) * 60 * 10**9
        steps[rng.random(len(steps)) < 0.01] += rng.integers(3, 60) * HOUR  # silent spells
        times = START + np.cumsum(steps)
        times = times[times < START + days * DAY]
        n = len(times)
        lat = 52 + np.cumsum(rng.normal(0, 0.01, n))
        lon = 6 + np.cumsum(rng.normal(0, 0.01, n))
        unplaced = rng.random(n) < 0.02
        outlier = pd.array(rng.random(n) < 0.04, dtype="boolean")
        outlier[rng.random(n) < 0.05] = pd.NA
        visible = pd.array(rng.random(n) > 0.03, dtype="boolean")
        visible[rng.random(n) < 0.05] = pd.NA
        frames.append(pd.DataFrame({"time": times, "species": species, "individual": individual,
                                    "lat": np.where(unplaced, np.nan, lat), "lon": np.where(unplaced, np.nan, lon),
                                    "outlier": outlier, "visible": visible}))
    return pd.concat(frames, ignore_index=True)


def km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def expected(frame: pd.DataFrame, width: int) -> dict[tuple[int, str], dict]:
    """Each bucket's summary straight from the fixes."""
    out = {}
    bad_all = frame["outlier"].fillna(False).astype(bool) | ~frame["visible"].fillna(True).astype(bool)
    placed_all = frame["lat"].notna() & frame["lon"].notna()
    frame = frame.assign(bad=bad_all, placed=placed_all, bucket=frame["time"] // width * width)
    for (bucket, individual), group in frame.sort_values("time").groupby(["bucket", "individual"]):
        good = group[~group["bad"] & group["placed"]]
        legs = list(zip(good.itertuples(), good.iloc[1:].itertuples(), strict=False))
        row = {"fixes": len(group), "outliers": int(group["bad"].sum()), "good": len(good),
               "placed": int((group["bad"] & group["placed"]).sum()),
               "km": sum(km(a.lat, a.lon, b.lat, b.lon) for a, b in legs),
               "hours": sum((b.time - a.time) / HOUR for a, b in legs), "newest_ns": int(group["time"].max())}
        if len(good):
            first, last = good.iloc[0], good.iloc[-1]
            row |= {"first_ns": int(first["time"]), "first_lat": first["lat"], "first_lon": first["lon"],
                    "last_ns": int(last["time"]), "last_lat": last["lat"], "last_lon": last["lon"]}
        shown = group[group["bad"] & group["placed"]]
        if len(shown):
            newest = shown.iloc[-1]
            row |= {"outlier_ns": int(newest["time"]), "outlier_lat": newest["lat"], "outlier_lon": newest["lon"]}
        out[(int(bucket), individual)] = row
    return out


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
    wanted = expected(frame, WIDTHS[level])
    got = {(int(pd.Timestamp(row["time"]).value), row["individual"]): row for row in rows}
    assert sorted(got) == sorted(wanted)
    for key, want in wanted.items():
        row = got[key]
        for name, kind in TRACK_COLUMNS:
            if name not in want:
                assert row[name] is None or (isinstance(row[name], float) and math.isnan(row[name])), (key, name)
            elif kind == "int64":
                assert row[name] == want[name], (key, name)
            else:
                assert row[name] == pytest.approx(want[name], rel=1e-9, abs=1e-9), (key, name)
    species = {row["individual"]: row["species"] for row in rows}
    assert species == {"Ada": "Larus fuscus", "Bo": "Ciconia ciconia"}


def test_a_table_without_positions_is_refused_with_its_columns_named():
    engine = LocalEngine()
    engine.create_database(DB)
    engine.load_frame(DB, TABLE, pd.DataFrame({"time": [START], "individual": ["Ada"], "lat": [52.0]}),
                      tags=("individual",))
    run = engine.run_schedule(PLUGIN, DB, datetime(2018, 10, 1), args={**ARGS, "by": "individual"})
    assert "bird_fixes has no column lon, outlier, visible (kind tracks)" in " ".join(run.messages())
