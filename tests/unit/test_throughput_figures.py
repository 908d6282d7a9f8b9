"""bench/throughput.py's reading of iperf3's JSON and its ratios (pure: no lab, no iperf3)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench" / "throughput.py"


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("bench_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_tcp_takes_the_receivers_rate_and_the_senders_retransmits(throughput):
    result = {"end": {"sum_sent": {"bits_per_second": 5.3e9, "retransmits": 7},
                      "sum_received": {"bits_per_second": 5.17e9}}}
    assert throughput.tcp_figures(result) == {"gbit_s": 5.17, "retransmits": 7}


def test_udp_reports_the_loss_and_what_arrived(throughput):
    result = {"end": {"sum": {"bits_per_second": 1e9, "lost_percent": 89.0, "packets": 1000}}}
    assert throughput.udp_figures(result) == {"offered_gbit_s": 1.0, "received_gbit_s": 0.11,
                                              "loss_percent": 89.0, "packets": 1000}


def test_a_failed_test_is_an_error_not_a_figure(throughput):
    failed = {"error": "unable to connect to server: Connection timed out"}
    assert throughput.tcp_figures(failed) == failed
    assert throughput.udp_figures(failed) == failed


def test_ratios_are_to_the_baseline_and_none_where_a_figure_is_missing(throughput):
    results = {"veth": {"tcp_gbit_s": 5.0}, "fabric": {"tcp_gbit_s": 2.5}, "broken": {"tcp_gbit_s": None}}
    throughput.ratios(results, 5.0)
    assert [r["ratio_to_veth"] for r in results.values()] == [1.0, 0.5, None]
    throughput.ratios(results, None)
    assert results["fabric"]["ratio_to_veth"] is None
