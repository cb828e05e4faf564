"""The bench's table and charts from results alone (no stack): every scenario's rows with
target and verdict, the machine line, and the charts drawn only from results present."""

from __future__ import annotations

from pathlib import Path

from bench import charts
from bench.report import report


def results() -> dict[str, dict[str, object]]:
    return {
        "cpu": {"cpu_us_per_request": 180.0, "wall_ops_per_s": 2000.0, "load_avg_1m_before": 1},
        "b": {"service_ops_per_s": 13000, "aiokafka_ceiling_ops_per_s": 26000, "ratio": 0.5},
        "a": {
            "stripe_latency_ms": 100,
            "service_ops_per_s": 4000.0,
            "best_in_flight": 1024,
            "naive_ops_per_s": 8.0,
            "ratio": 500.0,
            "by_in_flight": [
                {"in_flight": 256, "records": 10, "ops_per_s": 2400.0},
                {"in_flight": 1024, "records": 10, "ops_per_s": 4000.0},
            ],
        },
        "r": {
            "by_replicas": [{"replicas": 1, "ops_per_s": 1000}, {"replicas": 3, "ops_per_s": 2900}],
            "replicas": 3,
            "ratio": 2.9,
            "cores": 16,
        },
    }


def test_each_row_carries_its_target_and_verdict() -> None:
    """A missed target says MISSED, a met one met; rows follow the order the scenarios ran."""
    table = report(results(), 1.0, "python -m bench.run")["table"]
    lines = table.splitlines()
    assert lines[0].startswith("measured on ")
    assert "cpu 1" in lines[0]
    cpu = next(line for line in lines if line.startswith("cpu  CPU per request"))
    assert cpu.split()[-3:] == ["<=", "100", "MISSED"]
    ratio = next(line for line in lines if "ratio service / ceiling" in line)
    assert ratio.endswith("met")
    keys = [line.split()[0] for line in lines[2:]]
    assert keys.index("cpu") < keys.index("b") < keys.index("a")


def test_a_result_without_rows_of_its_own_is_left_out() -> None:
    """Results of a scenario the table does not know (another module's) do not break it."""
    table = report({"zz": {"x": 1}}, 1.0, "python -m bench.run")["table"]
    assert "zz" not in table.splitlines()[-1]


def test_charts_are_drawn_for_the_results_present(tmp_path: Path) -> None:
    """(a) and (r) are in the results, (c) is not: two PNGs, no third."""
    written = charts.draw({"results": results()}, tmp_path)
    assert sorted(p.name for p in written) == ["a-in-flight.png", "r-replicas.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)


def test_the_replicas_row_reads_what_the_chart_draws() -> None:
    """Row (r) and its chart read one shape of the scenario's result: 2.9 at N = 3 meets 0.9 N,
    and the per-N rates are listed."""
    lines = report(results(), 1.0, "python -m bench.run")["table"].splitlines()
    ratio = next(line for line in lines if line.startswith("r    3 replicas / one"))
    assert ratio.split()[-3:] == [">=", "2.7", "met"]
    assert any("1000 / 2900" in line for line in lines if line.startswith("r "))
