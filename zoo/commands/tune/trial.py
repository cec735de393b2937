"""A trial's run: ``zoo fit`` with the callback that reports to the study (``report.ReportToStudy``), started by a
worker as ``python -m zoo.commands.tune.trial fit ...`` with the trial in the environment. DDP starts the other
processes with the same words, so every process of the trial has the callback."""

from __future__ import annotations

import sys

from zoo.commands.tune.report import ReportToStudy, current


def main(argv: list[str]) -> None:
    from zoo.commands.lightning import main as zoo
    from zoo.commands.messages import report_failure

    trial = current()
    try:
        zoo(argv, callbacks=[ReportToStudy(trial)] if trial is not None else [])
    except BaseException as e:  # noqa: BLE001
        report_failure(e)


if __name__ == "__main__":
    main(sys.argv[1:])
