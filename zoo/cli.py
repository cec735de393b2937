"""The ``zoo`` command: looks the command up in ``zoo.commands.COMMANDS`` and runs it; any failure becomes one
line and an exit status (``ZOO_TRACEBACK=1``: the trace)."""

from __future__ import annotations

import importlib
import sys

from zoo.commands import COMMANDS


def main(args: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if args is None else args)
    if argv in ([], ["-h"], ["--help"], ["--version"], ["-V"]):
        from zoo.commands.help import show, top_help, version

        show(version() if argv in (["--version"], ["-V"]) else top_help())
        return
    from zoo.commands.help import class_help

    argv = class_help(argv)
    if argv[0] in COMMANDS:
        target, words = COMMANDS[argv[0]].target, argv[1:]
    else:  # not a command: LightningCLI's parser says what is wrong, as it does for any subcommand
        target, words = "zoo.commands.lightning:main", argv
    module, _, function = target.partition(":")
    try:  # imported on use: an extra's libraries (optuna, onnx, litserve) may not be installed
        getattr(importlib.import_module(module), function)(words)
    except BaseException as e:  # noqa: BLE001 (a message instead of a trace, whatever it is)
        if type(e) in (SystemExit, KeyboardInterrupt):  # --help's exit, sys.exit, Ctrl-C: as they are (Lightning's
            raise  # SIGTERMException, a SystemExit too, gets its line below)
        from zoo.commands.messages import report_failure

        report_failure(e)


if __name__ == "__main__":
    main()
