"""Suite-wide: the longest tests start first, so that pytest-xdist's workers finish together.

The integration tests wait on the seed's real timings (a dead line is 60 s, a caregiver callback two
minutes), so the suite's wall time is decided by how the long tests are spread over the workers. With
`--dist load` the scheduler hands tests out in collection order as workers free up: sorted longest
first, that is the classic longest-processing-time schedule, which leaves no 3-minute test to start
last. The durations come from `tests/durations.json`, written from a real run with
`pytest --durations-out tests/durations.json` (a test not in it counts as `UNKNOWN_*` below).
No kept plugin does this for xdist (pytest-split shards across CI jobs; pytest-order needs a marker
per test), hence these few lines.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
UNKNOWN_INTEGRATION = 60.0  # seconds: a new integration test is a call, so it starts early
UNKNOWN_UNIT = 0.1


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--durations-out", metavar="PATH", default=None,
                     help="write every test's duration (setup + call + teardown, seconds) to PATH as JSON")


def _expected_seconds(item: pytest.Item, known: dict[str, float]) -> float:
    if item.nodeid in known:
        return known[item.nodeid]
    return UNKNOWN_INTEGRATION if "/integration/" in f"/{item.nodeid}" else UNKNOWN_UNIT


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    # a stable sort: same order on every worker (xdist checks it), ties keep the file's order
    items.sort(key=lambda item: -_expected_seconds(item, known))


class _DurationRecorder:
    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        ordered = dict(sorted(((k, round(v, 2)) for k, v in self.seconds.items()), key=lambda kv: -kv[1]))
        self.path.write_text(json.dumps(ordered, indent=1) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    out = config.getoption("--durations-out")
    # only the controlling process records: it receives every worker's reports
    if out and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_DurationRecorder(Path(out)), "callflow-durations-out")
