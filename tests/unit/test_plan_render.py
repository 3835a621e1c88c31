"""The coloured plan says exactly what the plain text says, and colours only on a terminal."""

from __future__ import annotations

import io

from rich.console import Console
from test_plan_scenario_d import GOLDEN, scenario_plan

from bgpflat.views.plan import plan_renderable, plan_text


def rendered(*, color: bool) -> str:
    out = io.StringIO()
    console = Console(
        file=out, width=100, soft_wrap=True, force_terminal=color, color_system="standard" if color else None
    )
    console.print(plan_renderable(scenario_plan()), end="")
    return out.getvalue()


def test_plain_output_is_the_core_text_under_a_header() -> None:
    text = rendered(color=False)
    assert text == plan_text(scenario_plan())
    assert GOLDEN.split("\n\n", 1)[1] in text  # every stage, finding and the summary line


def test_colour_marks_adds_and_changes() -> None:
    text = rendered(color=True)
    assert "\x1b[" in text
    assert '\x1b[32m      + spec.peerIP: "10.200.20.254"' in text
