"""Audio input and the streaming audio front-end.

- files: :func:`read_audio`, :func:`iter_audio`, :func:`write_audio` (soundfile, ``audio`` extra);
- microphones: :class:`MicrophoneStream` (sounddevice, ``audio`` extra);
- resampling any rate to the model's: :func:`resample_step` / :func:`resample`;
- STFT and its inverse by overlap-add: :func:`stft_step`, :func:`istft_step`, :func:`stft`,
  :func:`istft`;
- log-mel features equal to torchaudio's ``MelSpectrogram`` + log: :class:`LogMelConfig`,
  :func:`logmel_step`, :func:`logmel`.

Every streaming function is ``f_step(chunk, state, config) -> (out, state)`` with a NamedTuple
state of fixed size; chunks of any size, fed one at a time, give the same output as one call
on the whole signal. Nothing here imports torch; soundfile and sounddevice are imported only
when a file or a microphone is opened.
"""

from eventsp.audio.io import AudioFileError, iter_audio, read_audio, rechunk, write_audio
from eventsp.audio.logmel import (
    FFTBackend,
    LogMelConfig,
    LogMelState,
    init_logmel_state,
    logmel,
    logmel_batch,
    logmel_step,
)
from eventsp.audio.mel import hz_to_mel, mel_filterbank, mel_to_hz
from eventsp.audio.microphone import MicrophoneError, MicrophoneStream, list_input_devices
from eventsp.audio.resample import (
    ResampleConfig,
    ResampleState,
    init_resample_state,
    resample,
    resample_flush,
    resample_step,
)
from eventsp.audio.stft import (
    FrameState,
    ISTFTState,
    STFTConfig,
    init_istft_state,
    init_stft_state,
    istft,
    istft_flush,
    istft_step,
    make_window,
    stft,
    stft_step,
)

__all__ = [
    "AudioFileError",
    "FFTBackend",
    "FrameState",
    "ISTFTState",
    "LogMelConfig",
    "LogMelState",
    "MicrophoneError",
    "MicrophoneStream",
    "ResampleConfig",
    "ResampleState",
    "STFTConfig",
    "hz_to_mel",
    "init_istft_state",
    "init_logmel_state",
    "init_resample_state",
    "init_stft_state",
    "istft",
    "istft_flush",
    "istft_step",
    "iter_audio",
    "list_input_devices",
    "logmel",
    "logmel_batch",
    "logmel_step",
    "make_window",
    "mel_filterbank",
    "mel_to_hz",
    "read_audio",
    "rechunk",
    "resample",
    "resample_flush",
    "resample_step",
    "stft",
    "stft_step",
    "write_audio",
]
