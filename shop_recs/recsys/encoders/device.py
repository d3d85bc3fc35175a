"""Where and with how many threads torch runs: explicit, because workers fork.

torch (and so sentence-transformers) sizes its thread pools lazily from the machine; a pool created
in a parent process does not survive ``fork`` and can hang the child. Celery workers therefore call
:func:`set_torch_threads` in each child before loading a model, and pass :func:`pick_device` to the
encoders instead of letting every library guess.
"""

from __future__ import annotations

import contextlib
import os

THREADS_ENV = "SHOP_RECS_TORCH_THREADS"

_interop_done = False


def pick_device(preferred: str | None = None) -> str:
    """``preferred`` if given (``"cuda:1"``, ``"mps"``), else ``"cuda"`` if available, else CPU."""
    if preferred:
        return preferred
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _available_cpus() -> int:
    # sched_getaffinity honours taskset/cpusets (containers), os.cpu_count() does not.
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_torch_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads and return the number used.

    ``n`` wins; else the ``SHOP_RECS_TORCH_THREADS`` environment variable; else the CPUs this
    process may run on. Inter-op threads are set to the same number once per process: torch only
    allows that before its first parallel work, so a later call keeps what is there.
    """
    global _interop_done
    import torch

    if n is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        n = int(raw) if raw else _available_cpus()
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    torch.set_num_threads(n)
    if not _interop_done:
        _interop_done = True
        # RuntimeError: inter-op work already started (or set) here; harmless for inference.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(n)
    return n
