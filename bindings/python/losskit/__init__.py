"""LossKit: training losses and their gradients over NumPy arrays.

    >>> import numpy as np, losskit
    >>> r = losskit.dense(np.array([[0.0, np.log(3.0)]]), np.array([1]), loss="log")
    >>> round(float(r.loss), 6)   # log(4/3)
    0.287682

Every loss of include/losskit.h over dense class rows (losskit.dense), candidate lists of
varying length (losskit.lists, losskit.lists.from_arrays) and linear chains (losskit.chain,
with losskit.viterbi and losskit.marginals), and L-Softmax over features and class weights
(losskit.lsoftmax); the angular-margin losses (CosFace, ArcFace) are dense losses on cosines. float64 input is computed by the
_f64 functions, anything else in float32. Failures raise LossKitError carrying the library's message.
"""

from ._native import VERSION as __version__, LossKitError, library_path, lib as _lib
from ._dense import DenseResult, dense
from ._lists import ListsResult, lists
from ._chains import ChainResult, MarginalsResult, ViterbiResult, chain, marginals, viterbi
from ._lsoftmax import LSoftmaxResult, lsoftmax

__all__ = ["dense", "DenseResult", "lists", "ListsResult", "chain", "ChainResult", "viterbi",
           "ViterbiResult", "marginals", "MarginalsResult", "lsoftmax", "LSoftmaxResult", "LossKitError", "version", "version_number", "cpu_level",
           "library_path"]


def version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return _lib.lk_version().decode()


def version_number() -> int:
    """The loaded library's LK_VERSION_NUMBER (MAJOR*10000 + MINOR*100 + PATCH)."""
    return _lib.lk_version_number()


def cpu_level() -> str:
    """The vector level the library computes with here: "x86-64", "avx2" or "avx512"
    (lk_cpu_level; the environment variable LOSSKIT_ISA caps it)."""
    return _lib.lk_cpu_level().decode()

