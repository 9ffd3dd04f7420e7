"""Config dataclasses: validation names the field and the value; dict round trips."""

import dataclasses

import pytest

from aim_edge import errors
from aim_edge.config import FbankConfig, RingConfig


def test_fbank_defaults_are_the_model_contract():
    cfg = FbankConfig()
    cfg.validate()
    assert (cfg.sample_rate, cfg.n_mels) == (16000, 80)
    assert (cfg.frame_length, cfg.frame_shift) == (400, 160)
    assert cfg.snip_edges is True and cfg.dither == 0.0


def test_fbank_round_trip_and_partial_dict():
    cfg = FbankConfig.from_dict({"n_mels": 64, "snip_edges": False})
    assert cfg.n_mels == 64 and cfg.snip_edges is False and cfg.sample_rate == 16000
    assert FbankConfig.from_dict(cfg.to_dict()) == cfg
    assert FbankConfig.from_dict(None) == FbankConfig()


def test_configs_are_frozen():
    cfg = FbankConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_mels = 40  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sample_rate", 0),
        ("sample_rate", 16000.0),
        ("n_mels", 0),
        ("n_mels", True),
        ("frame_length_ms", -25.0),
        ("frame_shift_ms", 30.0),  # longer than the window
        ("dither", float("nan")),
        ("preemph_coeff", 1.5),
        ("snip_edges", "yes"),
        ("low_freq", 9000.0),
        ("high_freq", 9000.0),
        ("high_freq", -7990.0),  # below low_freq
        ("log_floor", 0.0),
    ],
)
def test_fbank_bad_field_is_named_with_its_value(field, value):
    with pytest.raises(errors.ConfigError) as info:
        FbankConfig.from_dict({field: value})
    message = str(info.value)
    assert f"fbank.{field}" in message
    assert repr(value) in message
    assert isinstance(info.value, ValueError)


def test_unknown_field_is_refused_with_the_known_ones():
    with pytest.raises(errors.ConfigError, match=r"unknown field\(s\) \['nmels'\].*n_mels"):
        FbankConfig.from_dict({"nmels": 80})


@pytest.mark.parametrize("capacity", [0, 1, 3, 1000, 2**31, -4, 2.0])
def test_ring_capacity_must_be_a_power_of_two(capacity):
    with pytest.raises(errors.ConfigError, match=f"ring.capacity = {capacity!r}"):
        RingConfig(capacity=capacity).validate()


def test_ring_default():
    cfg = RingConfig.from_dict({})
    assert cfg.capacity == 65536
    assert cfg.seconds_at == pytest.approx(4.096)


def test_error_hierarchy_matches_builtin_exceptions():
    assert issubclass(errors.AudioTypeError, TypeError)
    assert issubclass(errors.AudioInputError, ValueError)
    assert issubclass(errors.BackendUnavailableError, ImportError)
    assert issubclass(errors.DeviceError, OSError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.AimEdgeError)
    exc = errors.BackendUnavailableError("ai-edge-litert", "pip install aim-edge[tflite]")
    assert "pip install aim-edge[tflite]" in str(exc) and exc.what == "ai-edge-litert"
