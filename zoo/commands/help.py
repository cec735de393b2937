"""``zoo SUBCOMMAND --help``: what can be chosen and the zoo's own options, in the zoo's words.

The full listing (every Trainer option, from Lightning's signatures) stays one word away: ``--help all``.
"""

from __future__ import annotations

import os
import sys

from zoo.commands import COMMANDS, SUBCOMMANDS

# `zoo --help`, `zoo --version` and `zoo weights` use only top_help, version and show: nothing here imports torch
# or Lightning at the top; the subcommands' help imports what it lists.

TEXT = """usage: zoo {sub} [-c CONFIG.yaml] [--model NAME] [--data NAME] [--OPTION VALUE ...]

{what}

Choose (short class names; `zoo list` describes each):
  --model NAME              {models}
  --data NAME               {datamodules}
  -c, --config FILE         a YAML config (configs/*.yaml); the command line overrides it, in any order

The zoo's options:
  --ckpt_path PATH|best|last
                            a checkpoint to {ckpt}; `best` / `last` find the newest best.ckpt / last.ckpt
                            of the run of the chosen model and data with these settings under lightning_logs/
                            (with none chosen: the newest run); the run taken is named. A checkpoint names its
                            model and DataModule with their options, so nothing else is needed.{only}
  --optimizer NAME          any torch.optim optimizer (default SGD, --optimizer.lr 0.1)
  --lr_scheduler NAME       any torch.optim.lr_scheduler scheduler (default none)
  --seed_everything N       the run's seed (default 0; true for a random one)
  --print_config            print the full resolved config and stop

More:
  --model.help NAME         one model's options (--model.OPTION VALUE)
  --data.help NAME          one DataModule's options (--data.OPTION VALUE)
  --trainer.OPTION VALUE    any Lightning Trainer option, e.g. --trainer.max_epochs 10,
                            -c configs/trainer/gpu.yaml or ddp.yaml or ddp_cpu.yaml (the presets)
  zoo {sub} --help all{pad}every option, the Trainer's included (long)
"""

WHAT = {name: COMMANDS[name].summary for name in SUBCOMMANDS}

ONLY = {
    "fit": """
  --checkpoint_every_n_steps N
                            also write last.ckpt every N training steps, so a killed run loses at most
                            N steps (default 0: at the end of each epoch only)""",
    "predict": """
  --data.predict_path PATH  an image file or a folder of images to classify (PNG, JPEG, any size); one
                            CSV row per file. Without it the test set is classified.
  --top_k K                 the K most probable classes of each input (default 1)
  --output FILE             the CSV to write (default: a new predictions.csv in the run's folder)""",
}


TOP = """usage: zoo COMMAND [OPTIONS]

The d2l model zoo: the classic models of Dive into Deep Learning, trained and evaluated with one command.

Commands:
{commands}

`zoo COMMAND --help` shows a command's options; `zoo --version` the versions. For example:
  zoo fit -c configs/lenet_fashion_mnist.yaml --data.root DIR
  zoo test --ckpt_path best
"""


def top_help() -> str:
    """``zoo``, ``zoo --help``: every command with its whole description."""
    lines = []
    for name, command in COMMANDS.items():
        first, *more = command.summary.splitlines()
        lines += [f"  {name:<10}  {first}", *(f"{'':14}{line}" for line in more)]
    return TOP.format(commands="\n".join(lines))


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    def of(package: str) -> str:  # the installed version, read without importing the package (seconds for torch)
        try:
            return installed(package)
        except PackageNotFoundError:  # a checkout that was not installed
            return "(not installed)"

    return f"d2l-zoo {of('d2l-zoo')} (torch {torch_build() or of('torch')}, lightning {of('lightning')})"


def torch_build() -> str | None:
    """torch's own ``__version__`` with its build (``2.14.1+cu130``: CUDA 13.0), read from its version.py without
    importing it; None where that file is not found."""
    import importlib.util
    import re
    from pathlib import Path

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return None
    try:
        text = (Path(spec.origin).parent / "version.py").read_text()
    except OSError:
        return None
    found = re.search(r"^__version__\s*(?::\s*str\s*)?=\s*['\"]([^'\"]+)['\"]", text, flags=re.M)
    return found.group(1) if found else None


def class_help(argv: list[str]) -> list[str]:
    """``zoo fit --data ImageFolder --help`` means ``--data.help ImageFolder`` (and likewise for --model): the
    options of what was chosen, not the general listing. Returns the words to parse."""
    if not any(a in ("-h", "--help") for a in argv) or argv[-2:] in (["--help", "all"], ["-h", "all"]):
        return argv
    if not set(argv) & set(SUBCOMMANDS) and argv[0] in COMMANDS:  # the zoo's own commands: their own help
        return argv
    from zoo.commands.arguments import option

    for key in ("--data", "--model"):
        name = option(argv, key)[1]
        if name:
            return [a for a in argv if a not in ("-h", "--help")] + [f"{key}.help", name]
    return argv


def short_help(subcommand: str) -> str:
    from zoo_common import list_datamodules, list_models

    return TEXT.format(
        sub=subcommand, what=WHAT[subcommand], models=", ".join(list_models()), datamodules=", ".join(list_datamodules()),
        ckpt={"fit": "resume from", "predict": "predict with"}.get(subcommand, "evaluate"), only=ONLY.get(subcommand, ""),
        pad=" " * (26 - len(f"  zoo {subcommand} --help all")),
    )


def catalogue() -> str:
    """``zoo list``: every model and DataModule with the first line of its docstring."""
    from zoo_common import get_datamodule, get_model, list_datamodules, list_models

    parts = []
    for title, names, get in (("Models (--model)", list_models(), get_model),
                              ("DataModules (--data)", list_datamodules(), get_datamodule)):
        width = max(map(len, names))
        parts += [title] + [f"  {n:<{width}}  {((get(n).__doc__ or '').strip().splitlines() or [''])[0]}" for n in names]
    return "\n".join(parts)


def show(text: str) -> None:
    """Print ``text``; a reader that stops early (`zoo fit --help | head`) gets no BrokenPipeError trace."""
    try:
        print(text)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def asks_for_help(argv: list[str], usage: str) -> bool:
    """``zoo CMD`` alone, or with -h/--help first: the command's usage is shown (a closed pipe is no error)."""
    if argv and argv[0] not in ("-h", "--help"):
        return False
    show(usage)
    return True


def own_options(parser, argv: list[str]):
    """A command's own options (argparse), the other words left for the model's parser: (namespace, rest).
    argparse's complaint, already on stderr, ends as one error naming the command's --help."""
    from zoo_common import ConfigError

    try:
        return parser.parse_known_args(argv)
    except SystemExit:
        raise ConfigError(f"bad {parser.prog} option (see above); `{parser.prog} --help` shows them") from None
