"""``eventsp inspect``: one line (or JSON object) per file, errors on stderr, exit status."""

from __future__ import annotations

import json

from eventsp.cli import main
from eventsp.events import read_events


def test_inspect_json_reports_real_recordings(data_root, capsys):
    files = [
        data_root / "events" / "formats" / "sample_nmnist.bin",
        data_root / "events" / "formats" / "evt3_sample.raw",
        data_root / "events" / "dvs128" / "clip4.bin",
    ]
    assert main(["inspect", "--json", *map(str, files)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(files)
    for line, path in zip(lines, files, strict=True):
        info = json.loads(line)
        events = read_events(path)[0].events
        t = events["t"]
        assert info["file"] == str(path)
        assert info["events"] == len(events)
        assert info["duration_us"] == int(t.max() - t.min())
        assert abs(info["rate_hz"] - len(events) / ((t.max() - t.min()) * 1e-6)) < 1e-6
    assert json.loads(lines[1])["format"] == "evt3"
    assert json.loads(lines[1])["sensor_size"] == [1280, 720, 2]
    assert json.loads(lines[2])["sensor_size"] == [128, 128, 2]


def test_inspect_text_and_errors(data_root, tmp_path, capsys):
    bad = tmp_path / "broken.aedat4"
    bad.write_bytes(b"#!AER-DAT4.0\r\n\x00\x01")
    good = data_root / "events" / "formats" / "sample_ncars.dat"
    assert main(["inspect", str(bad), str(good)]) == 1
    captured = capsys.readouterr()
    assert "broken.aedat4" in captured.err
    assert "corrupt" in captured.err
    assert "dat, 304x240x2, 2009 events, 0.099952 s" in captured.out
