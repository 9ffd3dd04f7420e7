"""The ring benchmark's quick mode runs, checks its peers, and writes a sane JSON report."""

import json

from benchmarks import bench_ring


def test_bench_ring_quick_writes_all_three_implementations(tmp_path, capsys):
    out = tmp_path / "ring.quick.json"
    assert bench_ring.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"aim_edge", "numpy_ring", "deque_blocks"}
    for res in report["results"].values():
        for stat in ("mean_ns", "median_ns", "p99_ns", "max_ns", "us_per_audio_s"):
            assert res[stat] > 0, (res["name"], stat)
        assert res["calls"] > 0 and res["calls"] % 3 == 0
    assert set(report["ratios_peer_over_ours"]) == {"numpy_ring", "deque_blocks"}
    for ratios in report["ratios_peer_over_ours"].values():
        assert all(value > 0 for value in ratios.values())
    assert report["workload"]["push_size"] == 320 and report["workload"]["pop_size"] == 160
    assert report["python_noop_call_ns"] > 0
    assert report["environment"]["numpy"]
    printed = capsys.readouterr().out
    assert "aim_edge" in printed and "deque_blocks" in printed and "numpy_ring" in printed


def test_peers_drop_the_oldest_like_ours():
    import numpy as np

    for cls in (bench_ring.NumpyRing, bench_ring.DequeBlockRing, bench_ring.RingBuffer):
        ring = cls(8)
        ring.push(np.arange(20, dtype=np.float32))  # longer than the ring
        np.testing.assert_array_equal(ring.pop(100), np.arange(12, 20, dtype=np.float32))
        ring.push(np.arange(5, dtype=np.float32))
        ring.push(np.arange(5, 10, dtype=np.float32))
        np.testing.assert_array_equal(ring.pop(3), np.arange(2, 5, dtype=np.float32))
        assert len(ring) == 5
