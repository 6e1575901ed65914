"""Every program's serial work, measured in the Triton interpreter: the ground truth of bench/work.py.

:class:`LoopCounter` instruments the interpreter (docs/what_the_interpreter_hides.md):
``interpreter_builder.set_grid_dim`` marks where a launch starts and ``set_grid_idx`` where each of its programs starts, and the kernels'
``range`` (their module's global, which the interpreter's rewritten functions look up before the
builtin) is replaced by one that counts iterations. A program's work is the number of iterations
of the innermost loops it runs (a loop during which no other loop starts), or 1 when it runs none:
the unit :mod:`bench.work` models. Loops written with ``tl.range`` / ``tl.static_range`` are not
seen (fasthg's kernels use ``range``); such a kernel would show up as a mismatch, not pass silently.
"""
import builtins
import importlib
import pkgutil

from triton.runtime.interpreter import interpreter_builder

import fasthg.kernels
from bench.launches import recording_launches
from bench.work import classes_of, imbalance


def kernel_modules():
    """The modules of fasthg.kernels, whose ``@triton.jit`` functions hold every loop of every kernel."""
    return [importlib.import_module(f"fasthg.kernels.{info.name}") for info in pkgutil.iter_modules(fasthg.kernels.__path__)]


class LoopCounter:
    """Within the block, ``launches`` gets one list per launch of its programs' works, in the order
    the interpreter runs them, for kernels defined in ``modules``."""

    def __init__(self, modules=None):
        self.modules = kernel_modules() if modules is None else modules
        self.launches = []
        self._active = []  # [iterations, has an inner loop] of each loop running, outermost first

    def range(self, *args):
        return self._counted(builtins.range(*args))

    def _counted(self, values):
        loop = [0, False]
        for outer in self._active:
            outer[1] = True
        self._active.append(loop)
        for value in values:
            loop[0] += 1
            yield value
        self._active.pop()
        if not loop[1]:
            self.launches[-1][-1] += loop[0]

    def works(self):
        """Per launch, the programs' works: innermost-loop iterations, or 1 for a program without loops."""
        return [[iterations or 1 for iterations in launch] for launch in self.launches]

    def _set_grid_dim(self, nx, ny, nz):
        self._original_dim(nx, ny, nz)
        self.launches.append([])

    def _set_grid_idx(self, x, y, z):
        self._original_idx(x, y, z)
        self.launches[-1].append(0)

    def __enter__(self):
        self._original_dim, self._original_idx = interpreter_builder.set_grid_dim, interpreter_builder.set_grid_idx
        interpreter_builder.set_grid_dim, interpreter_builder.set_grid_idx = self._set_grid_dim, self._set_grid_idx
        for module in self.modules:
            module.range = self.range
        return self

    def __exit__(self, *exc):
        del interpreter_builder.set_grid_dim, interpreter_builder.set_grid_idx  # back to the class's methods
        for module in self.modules:
            del module.range


def measured_launches(step):
    """Runs ``step()`` (kernels in the interpreter) and returns [(TritonLaunch, its programs' works)]."""
    launches = []
    with LoopCounter() as counter, recording_launches(launches.append, run=True):
        step()
    works = counter.works()
    assert len(works) == len(launches), f"{len(launches)} launches recorded, {len(works)} grids run"
    return list(zip(launches, works))


def imbalances(step):
    """[(TritonLaunch, longest ÷ median program work)] of each launch ``step()`` makes, measured in
    the interpreter (issue 14's bound: 4)."""
    return [(launch, imbalance(classes_of(works))) for launch, works in measured_launches(step)]
