"""Results kept between runs: the expensive references (mpmath in exact.py, the per-row NumPy
reference in reference.py) are pure functions of their arguments and of the source that computes
them, so each is computed once and kept in pytest's cache folder.

A Store is a dict saved as one pickle per kind and mode, whose file name carries a hash of the
computing source: an edit of that source never reads old results (and the save drops the stale
file). `make test` runs the CPU levels in processes side by side: each merges what it computed
into the file under a lock, so that none overwrites another's.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import hashlib
import os
import pickle
from pathlib import Path


class Store(dict):
    def __init__(self, kind: str, source_file: str):
        super().__init__()
        self.kind = kind
        self.source_hash = hashlib.sha256(Path(source_file).read_bytes()).hexdigest()[:16]
        self._changed = False

    def _path(self, folder, mode) -> Path:
        return Path(folder) / f"{self.kind}-{mode}-{self.source_hash}.pickle"

    def load(self, folder, mode="default") -> None:
        try:
            with open(self._path(folder, mode), "rb") as f:
                self.update(pickle.load(f))
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError):
            pass

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._changed = True

    def save(self, folder, mode="default") -> None:
        """Merges this process's results into the file, under a lock (nothing new: no write)."""
        if not self._changed:
            return
        folder = Path(folder)
        path = self._path(folder, mode)
        with open(folder / f"{self.kind}-{mode}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for old in folder.glob(f"{self.kind}-{mode}-*.pickle"):
                if old.name != path.name:
                    old.unlink(missing_ok=True)
            merged: dict = {}
            try:
                with open(path, "rb") as f:
                    merged = pickle.load(f)
            except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError):
                pass
            merged.update(self)
            tmp = folder / f"{path.name}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                pickle.dump(merged, f, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(path)
        self._changed = False

    @contextlib.contextmanager
    def kept_between_runs(self, config, mode="default"):
        """Loaded from pytest's cache folder and saved back to it (nothing under
        -p no:cacheprovider): for a fixture around the tests that use the store."""
        cache = getattr(config, "cache", None)
        if cache is None:
            yield
            return
        folder = cache.mkdir("losskit-accuracy")
        self.load(folder, mode)
        yield
        self.save(folder, mode)

    def memoised_by_digest(self, fn):
        """fn memoised under a SHA-256 of its arguments' exact bytes (arrays by dtype, shape and
        contents; anything else by repr) and of NumPy's version, for arguments too large or
        unhashable to be keys themselves. Each call returns its own deep copy, which the caller
        may change."""
        @functools.wraps(fn)
        def cached(*args, **kw):
            import numpy as np

            h = hashlib.sha256(f"numpy {np.__version__};".encode())
            for x in (args, sorted(kw.items())):
                _feed(h, x)
            key = (fn.__name__, h.hexdigest())
            if key not in self:
                self[key] = fn(*args, **kw)
            return copy.deepcopy(self[key])
        return cached


def _feed(h, x) -> None:
    import numpy as np

    if isinstance(x, np.ndarray):
        if x.dtype.hasobject:
            raise TypeError("kept.Store keys no object array (its bytes are pointers)")
        h.update(f"array {x.dtype.str} {x.shape}:".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    elif isinstance(x, (list, tuple)):
        h.update(f"{type(x).__name__}[".encode())
        for v in x:
            _feed(h, v)
        h.update(b"]")
    elif x is None or isinstance(x, (bool, int, float, str, np.generic)) and not isinstance(x, np.object_):
        h.update(f"{type(x).__name__} {x!r};".encode())  # repr: exact for floats of every width
    else:
        raise TypeError(f"kept.Store keys no {type(x).__name__} (its repr may not identify it)")
