"""``hw-sim fleet``: many simulated devices, each with the agent's real outbox and
publisher, against one broker; a broker SIGKILL and restart on cue (issue 13).

- :mod:`.profiles`: site profiles and messages shaped like the agent's
- :mod:`.device`: one device (outbox + publisher), its paho callbacks watched
- :mod:`.worker`: a group of devices in one process, fed on a Poisson schedule
- :mod:`.broker`: the mosquitto a run starts (TLS from a throwaway CA), session saves
- :mod:`.procstat`: the broker's CPU and memory from ``/proc``
- :mod:`.stats`: percentiles, ``seq`` accounting, histograms, windows (pure)
- :mod:`.report`: the figures, as a record and a table
- :mod:`.run`: the run itself; :mod:`.cli`: its command line
"""

from hw_sim.fleet.cli import add_fleet_parser, run_fleet_cli
from hw_sim.fleet.profiles import PROFILES, SiteProfile
from hw_sim.fleet.report import FleetReport, format_report
from hw_sim.fleet.run import FleetOptions, run_fleet

__all__ = [
    "PROFILES",
    "FleetOptions",
    "FleetReport",
    "SiteProfile",
    "add_fleet_parser",
    "format_report",
    "run_fleet",
    "run_fleet_cli",
]
