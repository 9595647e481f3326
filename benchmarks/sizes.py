"""How big each benchmark is in each mode.

The full sizes are the ones the targets speak of; ``quick`` is for trying changes,
``smoke`` only proves that every part runs and reports (CI runs it, in well under a
minute). Small sizes make ratios noisier, never different in kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MODES", "Sizes"]

_MIB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """Every size knob of one mode."""

    mode: str
    b1_records: int
    b1_repetitions: int
    b2_tasks: int
    b2_rounds: int
    b3_bytes: int
    # None keeps the package's default cap; smaller runs set one they reach.
    b3_cap: int | None
    b4_tasks: int
    b4_warmup: int
    b5_tasks: int
    b5_steps: int
    b7_summary_lines: int
    b7_compare_lines: int
    b7_repetitions: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


MODES: dict[str, Sizes] = {
    "full": Sizes(
        mode="full",
        b1_records=200_000,
        b1_repetitions=7,
        b2_tasks=500,
        b2_rounds=5,
        b3_bytes=1024 * _MIB,
        b3_cap=None,
        b4_tasks=10_000,
        b4_warmup=200,
        b5_tasks=200,
        b5_steps=20,
        b7_summary_lines=1_000_000,
        b7_compare_lines=100_000,
        b7_repetitions=3,
    ),
    "quick": Sizes(
        mode="quick",
        b1_records=20_000,
        b1_repetitions=5,
        b2_tasks=100,
        b2_rounds=4,
        b3_bytes=64 * _MIB,
        b3_cap=8 * _MIB,
        b4_tasks=500,
        b4_warmup=50,
        b5_tasks=40,
        b5_steps=10,
        b7_summary_lines=100_000,
        b7_compare_lines=20_000,
        b7_repetitions=2,
    ),
    "smoke": Sizes(
        mode="smoke",
        b1_records=2_000,
        b1_repetitions=2,
        b2_tasks=20,
        b2_rounds=2,
        b3_bytes=4 * _MIB,
        b3_cap=_MIB,
        b4_tasks=60,
        b4_warmup=10,
        b5_tasks=16,
        b5_steps=5,
        b7_summary_lines=5_000,
        b7_compare_lines=2_000,
        b7_repetitions=1,
    ),
}
