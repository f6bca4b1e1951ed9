"""LossKit: training losses and their gradients over NumPy arrays.

    >>> import numpy as np, losskit
    >>> r = losskit.dense(np.array([[0.0, np.log(3.0)]]), np.array([1]), loss="log")
    >>> round(float(r.loss), 6)   # log(4/3)
    0.287682

Structures: dense class rows (losskit.dense), candidate lists of varying length (losskit.lists,
losskit.lists.from_arrays), linear chains (losskit.chain, with losskit.viterbi and
losskit.marginals) and L-Softmax over features and class weights (losskit.lsoftmax); the
angular-margin losses (CosFace, ArcFace) are dense losses on cosines. Each function's docstring
gives the formula of every loss it takes. float64 input is computed in double, anything else in
float32. Every function that returns a gradient takes grad_out= to write it into given arrays.

Errors: a wrong shape, dtype or name is a ValueError raised before the call; a value outside
its domain (an option such as margin=0, a label out of range, +inf in the scores) is a
LossKitError, which is a ValueError too, with the lk_status in .status and .name and a message
that names the argument and the index.

References:
  [CND+22]  A. Chowdhery et al. PaLM: Scaling Language Modeling with Pathways. arXiv 2204.02311
            (z-loss).
  [CS01]    K. Crammer, Y. Singer. On the Algorithmic Implementation of Multiclass Kernel-based
            Vector Machines. JMLR 2001.
  [DGXZ19]  J. Deng, J. Guo, N. Xue, S. Zafeiriou. ArcFace: Additive Angular Margin Loss for Deep
            Face Recognition. CVPR 2019.
  [DLSVL08] C. B. Do, Q. Le, C. H. Teo, O. Chapelle, A. Smola. Tighter Bounds for Structured
            Estimation. NIPS 2008.
  [GS10]    K. Gimpel, N. A. Smith. Softmax-Margin CRFs: Training Log-Linear Models with Cost
            Functions. NAACL 2010.
  [GRP+24]  Gemma Team. Gemma 2: Improving Open Language Models at a Practical Size. arXiv
            2408.00118 (logit soft-capping).
  [GS12]    K. Gimpel, N. A. Smith. Structured Ramp Loss Minimization for Machine Translation.
            NAACL 2012.
  [HB20]    L. Hui, M. Belkin. Evaluation of Neural Architectures Trained with Square Loss vs
            Cross-Entropy in Classification Tasks. ICLR 2021 (arXiv 2006.07322).
  [HBW23]   L. Hui, M. Belkin, S. Wright. Cut your Losses with Squentropy. ICML 2023.
  [LE09]    Z. Li, J. Eisner. First- and Second-Order Expectation Semirings with Applications to
            Minimum-Risk Training on Translation Forests. EMNLP 2009.
  [LWYY16]  W. Liu, Y. Wen, Z. Yu, M. Yang. Large-Margin Softmax Loss for Convolutional Neural
            Networks. ICML 2016 (arXiv 1612.02295).
  [SMTH06]  D. A. Smith, J. Eisner. Minimum Risk Annealing for Training Log-Linear Models.
            COLING/ACL 2006.
  [SZVWW16] C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna. Rethinking the Inception
            Architecture for Computer Vision (label smoothing). CVPR 2016.
  [TJHA05]  I. Tsochantaridis, T. Joachims, T. Hofmann, Y. Altun. Large Margin Methods for
            Structured and Interdependent Output Variables. JMLR 2005.
  [WCLL18]  F. Wang, J. Cheng, W. Liu, H. Liu. Additive Margin Softmax for Face Verification.
            IEEE Signal Processing Letters 2018.
  [WWZJ18]  H. Wang, Y. Wang, Z. Zhou, X. Ji, D. Gong, J. Zhou, Z. Li, W. Liu. CosFace: Large
            Margin Cosine Loss for Deep Face Recognition. CVPR 2018.
"""

from ._native import VERSION as __version__, LossKitError, library_path, lib as _lib
from ._dense import DenseResult, dense
from ._lists import ListsResult, lists
from ._chains import ChainResult, MarginalsResult, ViterbiResult, chain, marginals, viterbi
from ._lsoftmax import LSoftmaxResult, lsoftmax
from ._linear import LinearResult, linear
from ._vocab import VocabParallelResult, vocab_parallel

__all__ = ["dense", "DenseResult", "lists", "ListsResult", "chain", "ChainResult", "viterbi",
           "ViterbiResult", "marginals", "MarginalsResult", "lsoftmax", "LSoftmaxResult", "linear", "LinearResult",
           "vocab_parallel", "VocabParallelResult", "LossKitError", "version", "version_number", "cpu_level", "library_path"]


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

