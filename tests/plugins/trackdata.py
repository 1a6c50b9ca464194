"""Tracking fixes as Movebank exports them, and each bucket's track summary computed from them in Python: the
reference the rollups plugin's `kind: tracks` is checked against, on the local engine and on real Core."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from plugins.stacklib.tracks import EARTH_RADIUS_KM, TRACK_COLUMNS

HOUR, DAY = 3_600 * 10**9, 86_400 * 10**9
START = 17_775 * DAY  # 2018-08-30, a Thursday: weeks since the epoch start on Thursdays


def fixes(days: int = 24, seed: int = 3, start: int = START) -> pd.DataFrame:
    """Two birds' GPS fixes every 5-40 minutes with silent spells of hours to days, some marked outliers, some hidden
    (visible false), some without a position, flags sometimes missing (null), as Movebank exports them."""
    rng = np.random.default_rng(seed)
    frames = []
    for individual, species in (("Ada", "Larus fuscus"), ("Bo", "Ciconia ciconia")):
        steps = rng.integers(5, 40, size=days * 60) * 60 * 10**9
        steps[rng.random(len(steps)) < 0.01] += rng.integers(3, 60) * HOUR  # silent spells
        times = start + np.cumsum(steps)
        times = times[times < start + days * DAY]
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


def lines(table: str, frame: pd.DataFrame) -> list[str]:
    """The fixes as line protocol (a missing value is left out, as the ingest app writes them)."""
    out = []
    for row in frame.itertuples():
        tags = f"species={row.species.replace(' ', chr(92) + ' ')},individual={row.individual}"
        fields = [f"{name}={getattr(row, name)!r}" for name in ("lat", "lon") if not pd.isna(getattr(row, name))]
        fields += [f"{name}={str(bool(getattr(row, name))).lower()}" for name in ("outlier", "visible")
                   if not pd.isna(getattr(row, name))]
        out.append(f"{table},{tags} {','.join(fields)} {int(row.time)}")
    return out


def differences(rows: list[dict], wanted: dict[tuple[int, str], dict]) -> list[str]:
    """How summary rows (as a query returns them) differ from `expected`: empty when every row is right."""
    got = {(int(pd.Timestamp(row["time"]).value), row["individual"]): row for row in rows}
    if sorted(got) != sorted(wanted):
        return [f"buckets {sorted(set(got) ^ set(wanted))[:5]} differ"]
    found = []
    for key, want in wanted.items():
        for name, kind in TRACK_COLUMNS:
            value = got[key].get(name)
            if name not in want:
                if not (value is None or (isinstance(value, float) and math.isnan(value))):
                    found.append(f"{key} {name}: {value!r}, expected none")
                continue
            same = (value == want[name] if kind == "int64"
                    else value is not None and math.isclose(value, want[name], rel_tol=1e-9, abs_tol=1e-9))
            if not same:
                found.append(f"{key} {name}: {value!r}, expected {want[name]!r}")
    return found
