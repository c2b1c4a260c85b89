"""The demo's pass mark and its judgement: which methods learned less than the demo's budget is meant to give.

Standard library only, so that ``smaformer demo`` judges its report without importing the trainers.
"""
from __future__ import annotations

from collections.abc import Mapping

#: What the demo's budget is meant to give each method on the phantom's test cases: below this mean DSC the budget
#: was too short for the machine or phantom (a method that learned most organs but missed the smallest ones in that
#: run).
DEMO_MIN_MEAN_DSC = 0.7


def below_pass_mark(report: Mapping[str, object]) -> dict[str, float]:
    """Mean DSC of each method in a demo report whose mean is below :data:`DEMO_MIN_MEAN_DSC`."""
    means = {name: float(evaluation["mean"]["dice"]) for name, evaluation in report["methods"].items()}
    return {name: dice for name, dice in means.items() if dice < DEMO_MIN_MEAN_DSC}


def pass_mark_warnings(report: Mapping[str, object]) -> list[str]:
    """One warning per method below the pass mark, in words for the user."""
    return [f"{name} reached a mean DSC of {dice:.3f}, below the demo's {DEMO_MIN_MEAN_DSC:.2f}: the budget is too "
            "short for this machine or phantom" for name, dice in below_pass_mark(report).items()]
