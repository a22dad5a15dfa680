"""The simulation suite: senders on virtual time against a fake SES (select with `-m simulation`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.simulation.harness import Simulation


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "simulation: senders on virtual time against a fake SES")


@pytest.fixture
def simulate(tmp_path: Path) -> Iterator[Callable[..., Simulation]]:
    """Builds Simulations in the test's directory and closes them after the test."""
    made: list[Simulation] = []

    def make(**options: Any) -> Simulation:
        sim = Simulation(tmp_path / f"sim{len(made)}", **options)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()
