"""The service demo step on real data (tiny random-weight models stand in for bundled ones)."""

from __future__ import annotations

import csv
import re

from eventsp.clients.demo import N_RECORDINGS, run_service_demo
from eventsp.train.data.events import nmnist_small_split


def test_service_demo_streams_real_recordings(models_dir, data_root):
    lines: list[str] = []
    served = run_service_demo(data_root, models_dir, say=lines.append)
    assert served == 2
    text = "\n".join(lines)
    assert re.search(r"server listening on 127\.0\.0\.1:\d+", text)
    assert "tiny-events (classify-events)" in text
    folder = data_root / "nmnist_small" / "train"
    with open(folder / "labels.csv", newline="") as f:
        labels = {row["file"]: row["label"] for row in csv.DictReader(f)}
    held_out = {path.name for path, _ in nmnist_small_split(folder)["test"]}
    rows = [line for line in lines if re.match(r"\s+\d+\.bin: ", line)]
    assert len(rows) == N_RECORDINGS
    for row in rows:
        name = row.split(":")[0].strip()
        assert name in held_out
        assert f"true {labels[name]}" in row
        events = int(row.split(":")[1].split("events")[0])
        assert events == (folder / name).stat().st_size // 5
    # The tiny KWS model streams real clips and answers a final prediction for each.
    assert sum("final w" in line for line in lines) == 3
    assert "open streams 0" in text
    assert lines[-1].strip() == "server stopped"
