"""Two changes to the Triton interpreter that make the suite faster, and change no value it computes.

1. **One patch of ``triton.language`` per launch.** The interpreter runs a launch with the
   language's builtins swapped for its NumPy ones (``_patch_lang``, undone when the launch ends),
   and swaps them in again on every call of a ``@triton.jit`` helper inside it: the same modules,
   patched with the same functions, about 3 ms a call (``inspect.getmembers`` of each module).
   :func:`patch_language_once_per_launch` skips a patch whose modules are already patched.
2. **Integer overflow checks only where they are made.** For every 32-bit integer add, sub and
   mul the interpreter builds an overflow check (casts to int64, two comparisons), then drops it
   unless its ``debug`` option is on, which it is not: pure cost. The suite stops building it
   (:func:`check_overflow` off), and the bounds checker of the memory-safety tests
   (``tests/memory_guard.py``) turns the check on for real (``debug`` and the check), so
   that those tests now also fail on an int32 overflow in a kernel's arithmetic.

Measured on a Residual(16, 16) fp64 training step at 2 x 16 x 1 x 1 under cProfile: 4.1 s, 3.0 s
with (1), 2.3 s with both. If the interpreter no longer has what (1) relies on (another Triton
version), it is not installed and the suite runs as before, only slower.
"""
import dataclasses

import triton.language as tl
import triton.runtime.interpreter as interpreter


class _Unpatched:
    """The scope of a patch that was not needed: nothing to undo."""

    def restore(self):
        pass


def _languages(fn):
    """The ``triton.language`` modules a jit function's module sees, which ``_patch_lang`` patches."""
    return frozenset(id(value) for value in fn.__globals__.values() if value is tl or value is tl.core)


def patch_language_once_per_launch():
    """Replaces ``interpreter._patch_lang`` with one that skips modules already patched. Returns
    whether it is in place."""
    patch_lang = getattr(interpreter, "_patch_lang", None)
    if patch_lang is None or getattr(patch_lang, "skips_patched_modules", False):
        return patch_lang is not None
    # Module sets patched since the outermost launch began, in order. A helper's patch is never
    # undone (the interpreter drops its scope), so a launch's restore forgets every later entry.
    active = []

    def patch_once(fn):
        languages = _languages(fn)
        if languages <= frozenset().union(*active):
            return _Unpatched()
        scope = patch_lang(fn)
        position = len(active)
        active.append(languages)
        restore = scope.restore

        def restore_and_forget():
            restore()
            del active[position:]

        scope.restore = restore_and_forget
        return scope

    patch_once.skips_patched_modules = True
    interpreter._patch_lang = patch_once
    return True


def check_overflow(enabled):
    """Makes the interpreter check 32-bit integer arithmetic for overflow (an assert that fails),
    or neither check nor build the check; returns the previous setting."""
    builder = interpreter.interpreter_builder
    previous = builder.options.debug and builder.options.sanitize_overflow
    builder.options = dataclasses.replace(builder.options, debug=enabled, sanitize_overflow=enabled)
    return previous
