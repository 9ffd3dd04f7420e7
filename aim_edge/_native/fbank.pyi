"""Stub of the pybind11 binding ``native/bindings/fbank.cc`` (private: use aim_edge.features).

The binding applies no input policy beyond its invariants: ``accept_waveform`` takes a 1-D
float32 array, ``accept_waveform_int16`` a 1-D int16 array (other dtypes raise TypeError;
non-contiguous or byte-swapped arrays are copied). Errors: ``aim_edge.errors.AudioInputError``
for NaN/inf samples, a non-1-D array or input after ``input_finished``; ``ConfigError`` for bad
options; ``NativeError`` for a broken invariant.
"""

import numpy as np
import numpy.typing as npt

class OnlineFbank:
    """Streaming Kaldi-compatible log-mel fbank (native ``aim_edge::OnlineFbank`` + a lock)."""

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_mels: int = 80,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        dither: float = 0.0,
        dither_seed: int = 0,
        preemph_coeff: float = 0.97,
        remove_dc_offset: bool = True,
        snip_edges: bool = True,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
        log_floor: float = 1.1920928955078125e-07,
    ) -> None: ...
    def accept_waveform(self, samples: npt.NDArray[np.float32]) -> None: ...
    def accept_waveform_int16(self, samples: npt.NDArray[np.int16]) -> None: ...
    def pop_frames(self, n: int = -1) -> npt.NDArray[np.float32]:
        """Pop up to n ready frames (all when n < 0) as a new (k, n_mels) float32 array."""
        ...
    def input_finished(self) -> None: ...
    def reset(self) -> None: ...
    @property
    def num_frames_ready(self) -> int: ...
    @property
    def first_frame_index(self) -> int: ...
    @property
    def num_samples_accepted(self) -> int: ...
    @property
    def num_samples_buffered(self) -> int: ...
    @property
    def is_finished(self) -> bool: ...
    @property
    def n_mels(self) -> int: ...
    @property
    def frame_length(self) -> int: ...
    @property
    def frame_shift(self) -> int: ...
