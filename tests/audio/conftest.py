"""Real speech for the audio tests: Speech Commands clips from ``../shared/data/speech``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# One clip per word from different speakers, read in a fixed order.
WORDS = ("yes", "no", "up", "left", "stop", "_silence_")


def speech_files(data_root: Path) -> list[Path]:
    root = data_root / "speech" / "speech_commands_v2_test_dev"
    files = [sorted((root / word).glob("*.flac"))[3] for word in WORDS]
    missing = [f for f in files if not f.is_file()]
    if missing:
        pytest.fail(f"speech clips {missing} are missing from the shared data")
    return files


@pytest.fixture(scope="session")
def speech(data_root: Path) -> list[np.ndarray]:
    """Six one-second 16 kHz float32 clips (five words and one background-noise clip)."""
    import soundfile

    return [soundfile.read(str(f), dtype="float32")[0] for f in speech_files(data_root)]


@pytest.fixture(scope="session")
def long_speech(speech: list[np.ndarray]) -> np.ndarray:
    """The six clips back to back: six seconds of real audio."""
    return np.concatenate(speech)
