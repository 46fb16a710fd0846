"""The benchmark tables' arithmetic: ratios, the slowest stage, goals met.
The figures are made up; what is checked is what the tables derive."""

from __future__ import annotations

from pydist_tools import bench_ceilings, bench_targets
from pydist_tools.bench import CASES
from pydist_tools.bench_lanes import CASES as LANE_CASES
from pydist_tools.measure import Rows

MIB = 1 << 20


def _rows(cases: list, stock: float, py: float) -> Rows:
    return [(case, {"inet_tcp": stock, "py": py}) for group, _ in cases for case in group]


def test_the_ceilings_table_reads_the_carrier_against_the_slowest_stage_on_its_path() -> None:
    ceilings = {stage: (4000.0, 0.5) for stage in bench_ceilings.stages()}
    ceilings[("Python -> Python, ZeroMQ", "zmq", 64 << 10)] = (1000.0, 0.9)
    ceilings[("BEAM -> Python, Unix socket", "to_socket", MIB)] = (10.0, 9.0)  # off the path
    rows: Rows = [(c, {"inet_tcp": 2000.0, "py": 500.0}) for group, _ in bench_ceilings.LARGE
                  for c in group if c.unit == "MB/s"]
    rows += [(c, {"inet_tcp": 0.4, "py": 1.6}) for group, _ in bench_ceilings.LARGE
             for c in group if c.unit == "ms"]
    text = bench_ceilings.table(ceilings, rows)
    assert "| 1 MiB msgs | 2,000 | 500 | 0.25x | 0.50 | 0.40 | 1.60 |" in text
    assert "(stdio in, ZeroMQ, stdio out): 1,000 MB/s" in text
    # the three stages on the path: 0.5 + 0.9 + 0.5 at 64 KiB, 3 x 0.5 at 1 MiB
    assert "64 KiB packets: 1.90 ms, 1 MiB packets: 1.50 ms" in text


def test_the_targets_table_says_which_goals_are_met_and_the_head_of_line_floor() -> None:
    carriers = _rows(CASES, 100.0, 300.0)  # 3x on rates, 1/3x on times
    lanes = _rows(LANE_CASES, 40_000.0, 5_000.0)  # p99 8x better
    figures = bench_targets.Figures(
        carriers, {s: (1.0, 1.0) for s in bench_ceilings.stages()}, [], lanes,
        {"other p50": 1.0, "other p99": 4_000.0, "same p50": 2.0, "same p99": 5_000.0})
    text = bench_targets.table(figures)
    assert "| 64 MiB msgs | 1.0x | 3.00x | yes |" in text
    assert "| 100 B msgs, 1 sender | 2.9x | 3.00x | yes |" in text
    assert "| round trip p50 | as before | 0.33x | compare |" in text
    assert "| round trip p99 behind streams | 10x | 8.00x | no |" in text
    assert "p99 is 4,000 us, 10.00x better than stock's 40,000 us" in text
