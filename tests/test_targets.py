"""Per-chunk training targets from hand-made labels with known answers."""

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch is needed by export/: pip install -e .[export]")

from aim_edge.text_embedding import HashedBagOfWords  # noqa: E402
from export.losses import ZONE_EARLY, ZONE_IGNORE, ZONE_LATE, ZONE_NONE, ZONE_WINDOW  # noqa: E402
from export.targets import chunk_targets, decision_time  # noqa: E402

RECORD = {
    "events": [{"onset": 2.0, "offset": 6.0, "label": "smoke_alarm"}],
    "speech": [{"start": 7.0, "end": 8.0, "transcript": "hey aim what time is it",
                "category": "question"}],
    "instructions": [{"start": 0.0, "end": 5.0, "text": None},
                     {"start": 5.0, "end": 10.0, "text": "tell me when the kettle whistles"}],
    "responses": [
        {"kind": "alert", "earliest": 2.0, "latest": 3.0,
         "trigger": {"type": "event", "index": 0}},
        {"kind": "answer", "earliest": 8.0, "latest": 9.0,
         "trigger": {"type": "question", "index": 0}},
    ],
    "no_response": [[0.0, 2.0], [3.0, 8.0], [9.0, 10.0]],
}


def _chunk_at(t):
    return int(np.searchsorted(decision_time(np.arange(62)), t))


def test_zones_windows_and_intents():
    tg = chunk_targets(RECORD, 62, ["smoke_alarm", "kettle_whistle"], HashedBagOfWords(dim=16))
    z = tg["zone"]
    assert z[_chunk_at(1.0)] == ZONE_NONE and tg["intent"][_chunk_at(1.0)] == 0
    k = _chunk_at(2.5)
    assert z[k] == ZONE_WINDOW and tg["window_id"][k] == 0 and tg["intent"][k] == 1
    assert z[_chunk_at(3.1)] == ZONE_IGNORE  # just after the window
    assert z[_chunk_at(5.0)] == ZONE_LATE  # alarm still sounding, window passed
    assert z[_chunk_at(6.5)] == ZONE_NONE
    assert z[_chunk_at(7.5)] == ZONE_EARLY  # the question is still being asked
    k = _chunk_at(8.5)
    assert z[k] == ZONE_WINDOW and tg["window_id"][k] == 1 and tg["intent"][k] == 2
    # the first window chunk is the first decided at or after the onset
    first = int(np.argmax(tg["window_id"] == 0))
    assert decision_time(first) >= 2.0 > decision_time(first - 1)


def test_events_instructions_and_segments():
    tg = chunk_targets(RECORD, 62, ["smoke_alarm", "kettle_whistle"], HashedBagOfWords(dim=16))
    on = np.flatnonzero(tg["events"][:, 0])
    assert 2.0 <= decision_time(on[0]) < 2.0 + 0.16 + 0.04 + 0.02
    assert tg["events"][:, 1].sum() == 0
    assert decision_time(on[-1]) - 0.175 < 6.0
    ids = tg["instruction_ids"]
    assert ids[_chunk_at(1.0)] == 0 and ids[_chunk_at(6.0)] == 1
    assert not tg["instruction_table"][0].any()
    assert np.linalg.norm(tg["instruction_table"][1]) == pytest.approx(1.0, abs=1e-5)
    assert tg["segments"] == [(43, 51, "hey aim what time is it")]
