"""Every failure as one line: the zoo's own errors as they are, jsonargparse's nested reports boiled down."""

from __future__ import annotations

import errno
import os
import re
import sys
from typing import NoReturn

from zoo.commands import SUBCOMMANDS
from zoo_common import ZooError

# the base classes jsonargparse checks an option against while no model or DataModule has been chosen yet
UNCHOSEN = {"ZooModule", "LightningModule", "InMemoryDataModule", "LightningDataModule"}


def _is(error: BaseException, module: str, name: str) -> bool:
    """``isinstance(error, module.name)``, without importing the module: an error cannot be an instance of a class
    that was never loaded, so a command that did not load Lightning (zoo analyze --tally, --help) is reported
    without paying seconds to import it."""
    cls = getattr(sys.modules.get(module), name, None)
    return cls is not None and isinstance(error, cls)


def _sigterm(error: BaseException) -> bool:
    return _is(error, "lightning.pytorch.utilities.exceptions", "SIGTERMException")


def zoo_cause(error: BaseException | None) -> ZooError | None:
    """The ZooError behind an error (jsonargparse and Lightning wrap what a constructor or a hook raises)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ZooError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def one_line(error: BaseException) -> str:
    """An error's message on one line: its first line (the zoo's messages put the fix there)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _expected(message: str) -> list[str]:
    found = []
    for cls, literal, other in re.findall(r"Expected a (?:<class '([^']+)'>|typing\.Literal\[([^\]]*)\]|(dot import path))", message):
        text = cls or (f"one of {literal}" if literal else "") or ("a class name" if other else "")
        if text and text != "NoneType" and text not in found:
            found.append(text)
    return found


def subcommand() -> str:
    """The subcommand this process runs (``fit`` when none is given yet)."""
    return next((a for a in sys.argv[1:] if a in SUBCOMMANDS), "fit")


# where each kind of file goes, and the option that moves it: said when a folder cannot be written
WHERE = (("lightning_logs", "runs go under the working directory: run from a folder you may write to, or pass "
                            "--trainer.default_root_dir DIR"),
         ("d2l-zoo", "the image cache: choose another folder with --data.cache_dir"),
         ("", "data goes under --data.root (default ./data), runs under --trainer.default_root_dir (default .)"))


def cannot_write(error: BaseException) -> bool:
    """A write refused (no permission, a read-only filesystem), as opposed to a full disk or a missing file."""
    return isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def permission_message(error: OSError, hint: str | None = None) -> str:
    """The folder or file that cannot be written, and ``hint`` (by default: the option that moves that kind of file)."""
    path = str(error.filename or "")
    hint = hint or next(h for part, h in WHERE if part in path)
    name = os.path.basename(path)
    if name.startswith(".") and name.endswith(".part"):  # a temporary name (zoo_common.part_name): the folder matters
        return f"cannot write in {os.path.dirname(path) or '.'} ({error.strerror}); {hint}"
    return f"cannot write {path} ({error.strerror}); {hint}"


def parse_error(message: str) -> str:
    """jsonargparse's report (nested per Union member and subclass, tens of lines) as: the option, the value,
    what it must be."""
    keys = re.findall(r'Parser key "([^"]+)"', message)
    first = message.strip().splitlines()[0] if message.strip() else message
    required = re.search(r'(?:Key "|arguments are required: )\w+\.(model|data)\b', message)
    if required:
        what = "model" if required.group(1) == "model" else "DataModule"
        return (f"choose a {what} with --{required.group(1)} NAME or -c CONFIG (or --ckpt_path CHECKPOINT, which "
                f"names its own); `zoo list` lists them")
    if not keys:  # e.g. "unrecognized arguments: --no_such_option 3"
        return f"{first}; `zoo {subcommand()} --help` lists the options"
    option = "--" + ".".join(keys)
    if keys[0] == "config":
        option = "-c/--config"
    inline = first.split('":', 1)[1].strip() if '":' in first else ""
    if inline:
        return f"{option}: {inline}"
    owner = re.search(r"class_path '([^']+)'", message)
    owner = owner.group(1).rsplit(".", 1)[-1] if owner else ""
    unknown = re.search(r"Option '([^']+)' is not accepted", message)
    if unknown and owner in UNCHOSEN:  # an option of a model or DataModule given before the class was chosen
        return (f"--{keys[0]}.{unknown.group(1)} came before the {keys[0]} was chosen: give --{keys[0]} NAME or "
                f"-c CONFIG first (options are read in order)")
    if unknown:
        return (f"--{keys[0]}.{unknown.group(1)}: {owner} has no option {unknown.group(1)!r}; "
                f"`zoo {subcommand()} --{keys[0]}.help {owner}` lists its options")
    restriction = re.search(r"Not of type (\w+): (.*)", message)
    if restriction:
        return f"{option}: {restriction.group(2)} ({restriction.group(1)})"
    value = re.search(r"(?:Given|Got) value: (.*)", message)
    value = f" {value.group(1).strip()}" if value else ""
    expected = _expected(message)
    return f"{option}{value}: expected {' or '.join(expected) if expected else 'another value'}"


def describe(error: BaseException) -> tuple[str, int]:
    """An error as the one line the user reads and the exit status: bad input (jsonargparse's reports, the
    zoo's errors) 2; SIGTERM 143; anything else 1."""
    if _sigterm(error):
        return "stopped by SIGTERM (last.ckpt saved where a run was training); resume with --ckpt_path last", 143
    if _is(error, "jsonargparse", "ArgumentError"):
        return f"error: {parse_error(str(error))}", 2
    if zoo_cause(error) is not None:  # jsonargparse and Lightning wrap what constructors and hooks raise
        cause = zoo_cause(error)
        return f"error: {one_line(cause)}", getattr(cause, "exit_code", 2)
    # Lightning's checks of the Trainer's options
    if _is(error, "lightning.fabric.utilities.exceptions", "MisconfigurationException"):
        option = re.match(r"`(\w+)` ", one_line(error))
        return f"error: {'--trainer.' + option.group(1) + ': ' if option else ''}{one_line(error)}", 2
    if cannot_write(error):
        return f"error: {permission_message(error)}", 2
    return f"error: {type(error).__name__}: {one_line(error)} (set ZOO_TRACEBACK=1 to see where it came from)", 1


def exit_with_one_line(error: BaseException) -> NoReturn:
    """The error's one line on stderr and its exit status; ``ZOO_TRACEBACK=1`` raises it instead, with its trace."""
    if _is(error, "zoo.commands.runs", "RunFinished"):  # nothing to do is no failure
        print(error)
        raise SystemExit(0)
    message, code = describe(error)
    if os.environ.get("ZOO_TRACEBACK") and not _sigterm(error):
        raise error
    print(message, file=sys.stderr)
    raise SystemExit(code)


def report_failure(error: BaseException) -> None:
    """A command's failure as its one line and exit status (any error, and SIGTERM); anything else (Ctrl-C,
    ``sys.exit``) goes on as it is."""
    if isinstance(error, Exception) or _sigterm(error):
        exit_with_one_line(error)
    raise error
