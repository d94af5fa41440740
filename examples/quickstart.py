"""Quickstart: run the integrated scenario and the same scenario switched off, then ask both runs questions.

    .venv/bin/python examples/quickstart.py [OUT_DIR]

Prints a few headline numbers; tests compare this output with ``examples/golden/quickstart.txt``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import credsim
from credsim.audit.paired import counterfactual


def main(out: Path) -> None:
    scen = credsim.load_scenario("integrated", {"population.size": 20_000, "run.days": 120, "run.seed": 11})
    system = credsim.run(scen, out=out / "integrated", threads=1)
    # the same scenario with the system switched off: same citizens, behaviours and sensors
    baseline = credsim.run(counterfactual(scen), out=out / "switched-off", threads=1)

    print("share on the court list, by hukou (end of run):")
    for hukou, share in system.sql(
            "SELECT hukou, avg(on_court_defaulters::INT) FROM citizens GROUP BY 1 ORDER BY 1"):
        print(f"  {hukou:8s} {100 * share:.2f}%")

    print("denied attempts, wrongful (official but not shadow) and missed, whole run:")
    for metric, total in system.sql(
            "SELECT split_part(metric, '.', 1), sum(value) FROM metrics WHERE dimension = 'all' AND "
            "regexp_matches(metric, '^(denied|wrongful|missed)\\.(travel|finance)') GROUP BY 1 ORDER BY 1"):
        print(f"  {metric:8s} {total:.0f}")

    q = "SELECT sum(value) FROM metrics WHERE dimension = 'all' AND metric = 'events.speech.post_critical'"
    with_system = system.sql(q)[0][0]
    without = baseline.sql(q)[0][0]
    print(f"critical posts with the system {with_system:.0f}, without {without:.0f} "
          f"(same seed, same citizens: the difference is chilling)")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
