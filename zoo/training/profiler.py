"""The trainer's profiler when none is asked for: Lightning's pass-through one, without its cost.

Lightning wraps every hook call, several per callback per step, in
``profiler.profile(name)``; its pass-through profiler makes a generator-based
context manager each time. With the zoo's callbacks that is about a hundred a
step, a tenth of a millisecond that a plain loop does not spend
(benchmarks/step_overhead.py). This one hands back the same empty context.
"""

from __future__ import annotations

from contextlib import nullcontext

from lightning.pytorch.profilers import PassThroughProfiler

_NOTHING = nullcontext()


class NoProfiler(PassThroughProfiler):
    def profile(self, action_name: str) -> nullcontext:
        return _NOTHING
