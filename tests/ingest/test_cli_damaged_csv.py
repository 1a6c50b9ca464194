"""`python -m ingest birds FILE` on a damaged Movebank export: the good rows load, the damaged lines are quarantined
with their line number and reason, and the run succeeds."""

from __future__ import annotations

import json

import pytest

from ingest.__main__ import main
from tests.ingest.formats import movebank_csv, movebank_row

GARBAGE = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01,\x01\x00H\x00H\x00\x00\xff\xdb\"\x00C\x00\x08\x06"


@pytest.mark.parametrize("compress", [False, True])
def test_a_garbage_line_and_a_torn_last_line_are_quarantined_and_every_other_row_lands(fake_influx, ingest_env,
                                                                                       write_file, tmp_path,
                                                                                       capsys, compress):
    fake, _ = fake_influx
    lines = movebank_csv([movebank_row(index) for index in range(31)]).rstrip(b"\r\n").split(b"\r\n")
    torn = lines[31][:lines[31].index(b'"O_ASSEN') + 8]  # the last write, cut short inside the quoted study name
    content = b"\r\n".join([*lines[:17], GARBAGE, *lines[17:31], torn])
    path = write_file("birds.csv", content, compress=compress)

    assert main(["birds", str(path), "--no-progress"]) == 0

    assert len(fake.keys("influxdb2", "bird_fixes")) == len(fake.keys("influxdb3", "bird_fixes")) == 30
    [rejects] = (tmp_path / "state" / "rejects").glob("birds-*.jsonl")
    entries = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    column = torn.index(b'"O_ASSEN') + 1
    assert [(entry["line"], entry["reason"]) for entry in entries] == [
        (18, "not valid UTF-8 (byte 0xff at column 1)"),
        (33, f"cut short: the quoted value at column {column} is not closed at the end of the file")]
    assert entries[0]["record"] == GARBAGE.decode("utf-8", "backslashreplace")
    assert entries[1]["record"] == torn.decode() and {entry["input"] for entry in entries} == {str(path)}
    err = capsys.readouterr().err
    assert "read 32 rows, rejected 2" in err and "Traceback" not in err
