"""Movebank exports and the REST API into bird_fixes: tags, fields, flags, quarantined rows with their lines."""

from __future__ import annotations

import hashlib

import pytest

from common.retry import RetryPolicy
from ingest.csvreader import CsvFile
from ingest.download import Http
from ingest.sources import SourceError
from ingest.sources.movebank import MovebankApi, MovebankFile
from tests.ingest.formats import STUDY, movebank_csv, movebank_row
from tests.support.lineprotocol import parse_lines
from tests.support.paths import shared_file
from tests.support.recorder import RecordingServer, Reply


def run(source: MovebankFile):
    points, rejects, read = [], [], 0
    for chunk in source.chunks():
        read += chunk.rows_read
        rejects += [(line, reason) for line, reason, _ in chunk.rejects]
        encoded = chunk.encoder.encode(chunk.table)
        lines = chunk.lines(encoded.rejected.rows) if len(encoded.rejected) else []
        rejects += [(int(line), reason) for line, (_, reason) in zip(lines, encoded.rejected, strict=True)]
        points += parse_lines(encoded.text())
    return points, sorted(rejects, key=lambda item: item[0] or 0), read


@pytest.mark.parametrize("compress", [False, True])
def test_export_loads_good_rows_keeps_outliers_and_quarantines_bad_ones_with_line_numbers(write_file, compress):
    rows = [movebank_row(index) for index in range(6)]
    rows[2].update({"visible": "false", "import-marked-outlier": "true"})
    rows.append(movebank_row(6, timestamp="2018-05-32 25:00:00"))                    # line 8 (header is 1)
    rows.append(movebank_row(7, **{"location-lat": "abc"}))                          # line 9
    rows.append(movebank_row(8, **{"location-lat": "95.5"}))                         # line 10
    rows.append(movebank_row(9, **{"location-long": ""}))                            # line 11
    rows.append('20432407999,true,"2018-05-10 10:00:00.000",6.58,53.0')              # line 12: too few fields
    rows.append(movebank_row(10, heading="n/a"))                                     # line 13
    rows.append(movebank_row(11, visible="maybe"))                                   # line 14
    rows.append(movebank_row(12, individual="5515867"))                              # line 15, good
    path = write_file("export.csv.gz" if compress else "export.csv", movebank_csv(rows), compress=compress)

    points, rejects, read = run(MovebankFile(CsvFile(path)))

    assert read == 14 and len(points) + len(rejects) == read
    assert [line for line, _ in rejects] == [8, 9, 10, 11, 12, 13, 14]
    reasons = dict(rejects)
    assert "timestamp '2018-05-32 25:00:00' is not a date and time" in reasons[8]
    assert reasons[9] == "location-lat 'abc' is not a number"
    assert reasons[10] == "location-lat 95.5 is outside ±90"
    assert reasons[11] == "location-long is empty (no position)"
    assert "5 fields where the header has 22" in reasons[12]
    assert reasons[13] == "heading 'n/a' is not a number"
    assert "visible 'maybe'" in reasons[14]

    first = points[0]
    assert first.measurement == "bird_fixes"
    assert first.tags == {"species": "Haematopus ostralegus", "individual": "5515851", "tag": "5642",
                          "sensor_type": "gps", "study": STUDY}
    assert first.timestamp == 1525824005_000_000_000  # 2018-05-09 00:00:05, no zone: UTC
    assert first.fields["lat"] == pytest.approx(53.0082323) and first.fields["lon"] == pytest.approx(6.5815293)
    assert first.fields["visible"] is True and first.fields["outlier"] is False
    assert {"ground_speed", "heading", "gps_satellite_count", "height_above_msl", "external_temperature"} <= \
        set(points[1].fields)
    assert "ground_speed" not in first.fields  # empty cell: left out, not 0
    assert not any("bar_barometric_pressure" in point.fields for point in points)  # empty column everywhere
    marked = points[2]
    assert marked.fields["visible"] is False and marked.fields["outlier"] is True
    assert points[-1].tags["individual"] == "5515867"
    assert all(isinstance(value, float) for point in points for key, value in point.fields.items()
               if key not in ("visible", "outlier"))


def test_timestamps_without_zone_are_utc_and_with_zone_are_converted(write_file):
    rows = [movebank_row(0, timestamp="2018-05-09 14:59:05.000"),
            movebank_row(1, timestamp="2018-05-09T16:59:05+02:00")]
    points, rejects, _ = run(MovebankFile(CsvFile(write_file("z.csv", movebank_csv(rows)))))
    assert not rejects and points[0].timestamp == points[1].timestamp == 1525877945_000_000_000


def test_a_text_column_is_not_loaded_and_does_not_reject_rows(write_file):
    header = ["timestamp", "location-long", "location-lat", "eobs:status", "individual-local-identifier"]
    rows = [{"timestamp": "2018-05-09 14:59:05", "location-long": "6.5", "location-lat": "53.0", "eobs:status": "A",
             "individual-local-identifier": "1"}]
    points, rejects, _ = run(MovebankFile(CsvFile(write_file("t.csv", movebank_csv(rows, header=header)))))
    assert not rejects and set(points[0].fields) == {"lat", "lon"}


def test_not_a_movebank_table_is_refused_with_the_missing_columns(write_file):
    path = write_file("other.csv", b"time,value\n2024-01-01,1\n")
    with pytest.raises(SourceError, match="no timestamp, location-lat, location-long column"):
        MovebankFile(CsvFile(path, label="my.csv"))


@pytest.mark.slow
def test_the_shared_oystercatcher_file_loads_completely():
    path = shared_file("movebank_oystercatcher.csv")
    points, rejects, read = run(MovebankFile(CsvFile(path)))
    assert read == 20_156 and not rejects and len(points) == read
    assert len({point.tags["individual"] for point in points}) == 4
    assert sum(point.fields["visible"] is False for point in points) == 4
    assert len({(point.tags["individual"], point.timestamp) for point in points}) == read


# ---- REST API ------------------------------------------------------------------------------------------------
LICENSE = b'The requested download may contain copyrighted material. <span>License Terms: </span>CC0<br>'
EVENTS = ("individual_id,deployment_id,tag_id,study_id,sensor_type_id,individual_local_identifier,"
          "tag_local_identifier,individual_taxon_canonical_name,eobs_status,ground_speed,location_lat,"
          "location_long,timestamp,visible,event_id\n"
          '2911059,9472219,2911107,2911040,653,"4264-84830852","131",Phoebastria irrorata,"A",0.01,-1.372641,'
          "-89.740214,2008-05-31 13:30:02.001,true,28192174\n"
          '2911059,9472219,2911107,2911040,653,"4264-84830852","131",Phoebastria irrorata,"A",0.0,-1.3728941,'
          "-89.7401542,2008-05-31 15:00:44.998,false,28192175\n")


def movebank_responder(*, license_required: bool = True, permitted: bool = True):
    def respond(request):
        kind = request.param("entity_type")
        if request.header("authorization") is None:
            return Reply(401, "authentication required")
        if kind == "study":
            return Reply(200, "id,name\n2911040,Galapagos Albatrosses\n", {"Content-Type": "text/csv"})
        if kind == "tag_type":
            return Reply(200, "description,external_id,id,is_location_sensor,name\n,gps,653,true,GPS\n",
                         {"Content-Type": "text/csv"})
        if not permitted:
            return Reply(200, "<p>No data available.</p><p>Please contact the data owner</p>",
                         {"Content-Type": "text/html"})
        accepted = request.param("license-md5") == hashlib.md5(LICENSE).hexdigest() and \
            "JSESSIONID=abc" in (request.header("cookie") or "")
        if license_required and not accepted:
            return Reply(200, LICENSE, {"accept-license": "true", "Content-Type": "text/html",
                                        "Set-Cookie": "JSESSIONID=abc; Path=/"})
        return Reply(200, EVENTS, {"Content-Type": "text/csv"})
    return respond


def test_rest_api_accepts_the_license_in_the_same_session_and_maps_ids(tmp_path):
    with RecordingServer(movebank_responder()) as server:
        api = MovebankApi(Http(policy=RetryPolicy(attempts=1)), 2911040, username="me", password="pw",
                          accept_license=True, url=server.url + "/movebank/service/direct-read")
        source = api.fetch(tmp_path)
        events = server.matching(path="/movebank/service/direct-read")
    points, rejects, read = run(source)
    assert read == 2 and not rejects
    assert points[0].tags == {"species": "Phoebastria irrorata", "individual": "4264-84830852", "tag": "131",
                              "sensor_type": "gps", "study": "Galapagos Albatrosses"}
    assert points[1].fields["visible"] is False
    assert "eobs_status" not in points[0].fields and "individual_id" not in points[0].fields
    assert points[0].fields["ground_speed"] == 0.01
    assert [request.param("license-md5") for request in events if request.param("entity_type") == "event"] == \
        [None, hashlib.md5(LICENSE).hexdigest()]
    assert all(request.header("authorization", ).startswith("Basic ") for request in events)


def test_rest_api_does_not_accept_a_license_on_its_own(tmp_path):
    with RecordingServer(movebank_responder()) as server:
        api = MovebankApi(Http(policy=RetryPolicy(attempts=1)), 2911040, username="me", password="pw",
                          url=server.url + "/direct-read")
        with pytest.raises(SourceError, match="MOVEBANK_ACCEPT_LICENSE=true") as raised:
            api.fetch(tmp_path)
    assert "License Terms" in str(raised.value)


def test_rest_api_without_permission_or_credentials_says_so(tmp_path):
    with RecordingServer(movebank_responder(permitted=False)) as server:
        api = MovebankApi(Http(policy=RetryPolicy(attempts=1)), 1, username="me", password="pw",
                          url=server.url + "/direct-read")
        with pytest.raises(SourceError, match="no data is available"):
            api.fetch(tmp_path)
        anonymous = MovebankApi(Http(policy=RetryPolicy(attempts=1)), 1, url=server.url + "/direct-read")
        with pytest.raises(SourceError, match="refused the credentials"):
            anonymous.fetch(tmp_path)
