"""Which GOPs are scored, and how per-frame errors add up to a PSNR."""

from __future__ import annotations

import math

import pytest

from worker.quality import MAX_PSNR, SCORE_EVERY_GOPS, Score, parse_stats, scored_gops

STATS = """n:1 mse_avg:4.00 mse_y:5.00 mse_u:2.00 mse_v:2.00 psnr_avg:42.11 psnr_y:41.14
n:2 mse_avg:16.00 mse_y:20.00 mse_u:8.00 mse_v:8.00 psnr_avg:36.09 psnr_y:35.12
"""


def test_one_run_and_its_chunks_score_the_same_gops():
    assert SCORE_EVERY_GOPS == 15
    whole = scored_gops(0, 47)
    assert whole == [0, 15, 30, 45]
    chunks = [(0, 3), (3, 30), (33, 14)]
    assert [g for first, count in chunks for g in scored_gops(first, count)] == whole
    assert scored_gops(16, 5) == []


def test_frame_errors_add_up_across_chunks_to_the_psnr_of_their_mean():
    first = parse_stats(STATS)
    assert first == Score(frames=2, squared_error=20.0)
    total = first + Score.from_list([1, 10.0])
    assert total == Score(3, 30.0)
    assert total.psnr == pytest.approx(10 * math.log10(255**2 / 10), abs=0.01)
    assert Score.from_list(total.to_list()) == total


def test_nothing_scored_is_no_score_and_a_perfect_copy_is_capped():
    assert Score().psnr is None
    assert Score(5, 0.0).psnr == MAX_PSNR
