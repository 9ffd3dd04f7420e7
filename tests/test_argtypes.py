"""The shared argparse converters name the bad value and the expected range."""

import argparse

import pytest

from aim_edge._argtypes import nonneg_int, positive_int, positive_number


def test_integers():
    assert positive_int("3") == 3 and nonneg_int("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="0 must be >= 1"):
        positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError, match="'x' is not an integer"):
        nonneg_int("x")


def test_numbers_of_a_unit():
    seconds = positive_number("seconds")
    assert seconds("0.5") == 0.5
    for bad in ("0", "-1", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a number of seconds > 0"):
            seconds(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="is not a number of milliseconds"):
        positive_number("milliseconds")("fast")
