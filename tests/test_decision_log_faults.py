"""The decision log under write failures: records once and whole, failures cheap and reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import guardrail as gr
from guardrail.testing import capture_events

MODEL = gr.ModelRef(name="fraud", version="1")

# Writes records while the file may not grow past a size limit (a real EFBIG,
# partial writes included), then lifts the limit: what waited is written once.
TRANSIENT = """
import json, resource, signal, sys
import guardrail as gr
gr.configure(hooks=[])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path, total = sys.argv[1], int(sys.argv[2])
sink = gr.holdout.JsonLinesSink(path, flush_every=50, max_buffer=100_000, retry_every=0)
log = gr.DecisionLog(sink)
model = gr.ModelRef(name="m", version="1")
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
for i in range(total // 2):
    log.write(gr.Prediction(gr.Probability(0.5), model))
failures, during = sink.failures, log.written
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
for i in range(total - total // 2):
    log.write(gr.Prediction(gr.Probability(0.5), model))
sink.close()
print(json.dumps({"failures": failures, "during": during, "written": log.written}))
"""


def decision_ids(path: Path) -> list[str]:
    """The ids of the file's records (every line must parse)."""
    return [json.loads(line)["decision_id"] for line in path.read_text().splitlines()]


class TestTransientFailure:
    def test_records_are_written_once_and_whole_after_the_file_could_not_grow(
        self, tmp_path: Path
    ) -> None:
        """Writes cut short by a file size limit finish later: no duplicate, no torn line."""
        path = tmp_path / "d.jsonl"
        total = 3_000
        out = subprocess.run(
            [sys.executable, "-c", TRANSIENT, str(path), str(total)],
            capture_output=True,
            text=True,
            check=True,
        )
        report = json.loads(out.stdout)
        assert report["failures"] > 0
        ids = decision_ids(path)
        assert len(ids) == len(set(ids)) == total == report["written"]
        assert report["during"] < total // 2


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
class TestFailingSink:
    def test_a_full_disk_costs_one_attempt_per_retry_interval(self) -> None:
        """With the disk full, the sink tries once per retry interval and drops the rest at once."""
        sink = gr.holdout.JsonLinesSink(
            "/dev/full", flush_every=10, max_buffer=100, retry_every=3600
        )
        log = gr.DecisionLog(sink)
        for _ in range(5_000):
            log.write(gr.Prediction(gr.Probability(0.5), MODEL))
        assert sink.failures == 1
        assert (log.accepted, log.dropped_full, log.written) == (100, 4_900, 0)
        assert sink.buffered == 100
        with pytest.raises(OSError, match="No space"):
            sink.close()

    def test_the_first_failed_write_is_reported(self) -> None:
        """The log reports the sink's first failed write, long before its buffer is full."""
        sink = gr.holdout.JsonLinesSink(
            "/dev/full", flush_every=2, max_buffer=10_000, retry_every=0
        )
        log = gr.DecisionLog(sink)
        with capture_events() as events:
            for _ in range(2):
                log.write(gr.Prediction(gr.Probability(0.5), MODEL))
        failed = [e for e in events if isinstance(e, gr.instrumentation.DecisionLogFailed)]
        assert [(e.reason, e.count) for e in failed] == [("error", 1)]
        assert "OSError" in failed[0].error
        assert (log.accepted, log.written, sink.failures) == (2, 0, 1)
        with pytest.raises(OSError, match="No space"):
            sink.close()

    def test_written_counts_what_reached_the_file(self, tmp_path: Path) -> None:
        """written counts lines in the file, not records waiting in the buffer."""
        path = tmp_path / "d.jsonl"
        sink = gr.holdout.JsonLinesSink(path, flush_every=10)
        log = gr.DecisionLog(sink)
        for _ in range(15):
            log.write(gr.Prediction(gr.Probability(0.5), MODEL))
        assert (log.accepted, log.written, sink.buffered) == (15, 10, 5)
        sink.close()
        assert log.written == len(decision_ids(path)) == 15

    def test_bad_retry_interval(self, tmp_path: Path) -> None:
        """A negative retry interval is a ConfigError."""
        with pytest.raises(gr.ConfigError):
            gr.holdout.JsonLinesSink(tmp_path / "x", retry_every=-1)
