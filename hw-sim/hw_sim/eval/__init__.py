"""``hw-sim eval``: run scenarios through the real agent pipeline and score it against truth.

Each scenario is replayed offline (no pacing, no looping) through exactly what the
agent runs — ``edge_agent.assemble.build_pipeline`` with the real detector — with the
camera config its ``Expectations.camera`` gives (``run``). What the pipeline emits
(alerts, states, counts) is compared with the scenario's truth (``score``, which says
how alerts, states, counts and false alarms are matched and counted); ``soak`` repeats
the false-alarm checks for hours of simulated time; ``report`` prints the table and
``cli`` is the subcommand.

Another scenario library plugs in by registering scripts with expectations: nothing
here knows a rule or analyzer by name.
"""

from hw_sim.eval.cli import add_eval_parser, run_eval_cli
from hw_sim.eval.report import format_table
from hw_sim.eval.run import (
    DEFAULT_FPS,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    EVAL_DATE,
    _default_detector,
    clock_start_s,
    eval_config,
    evaluable_scenarios,
    evaluate,
    false_alarm_scenarios,
    run_scenario,
    simulated_s,
)
from hw_sim.eval.score import (
    COUNT_RULE_KINDS,
    DEFAULT_TOLERANCE_S,
    STATE_RULE_KINDS,
    Interval,
    Report,
    RowScore,
    ScenarioRun,
    label_family,
    match,
    observed_alerts,
    observed_states,
    score,
    soak_breakdown,
)
from hw_sim.eval.soak import soak, soak_plan

__all__ = [
    "COUNT_RULE_KINDS",
    "DEFAULT_FPS",
    "DEFAULT_HEIGHT",
    "DEFAULT_TOLERANCE_S",
    "DEFAULT_WIDTH",
    "EVAL_DATE",
    "STATE_RULE_KINDS",
    "Interval",
    "Report",
    "RowScore",
    "ScenarioRun",
    "_default_detector",
    "add_eval_parser",
    "clock_start_s",
    "eval_config",
    "evaluable_scenarios",
    "evaluate",
    "false_alarm_scenarios",
    "format_table",
    "label_family",
    "match",
    "observed_alerts",
    "observed_states",
    "run_eval_cli",
    "run_scenario",
    "score",
    "simulated_s",
    "soak",
    "soak_breakdown",
    "soak_plan",
]
