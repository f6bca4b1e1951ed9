// LossKit — design (keep this note true).
//
// A loss is "fear minus hope" (DESIGN.md §1): per example, over candidate outputs y with scores
// s[y] and costs c[y] = cost_scale * cost(gold, y),
//
//     loss = F(s + f c) - H(s - h c)        F in {max, lse},  H in {gold, oracle, max, lse}
//
// and a few recipes beside it (risk, the square losses, label smoothing) over the same
// primitives. The code is split the same way:
//
//   Losses/        the fear and hope terms (Terms), the catalogue of recipes (Catalogue), their
//                  Hessian diagonals (Hessian), CosFace / ArcFace over cosines (Angular)
//   Structures/    what a structure provides (Structure); one example over flat candidates
//                  (FlatCandidates) behind dense rows (Dense) and candidate lists (Lists); linear
//                  chains (Chains/); L-Softmax over features and class weights (LSoftmax)
//   Kernels/       the vector kernels: rows, tag vectors, matrix products, the vector types
//   Runtime/       options, validation, batches and reductions, threads, scratch memory,
//                  failures and lk_last_error, the CPU-level dispatch (Variant)
//   CAPI/          the @c entry points of include/losskit.h: they forward, no math
//
// Numerics: every value is loaded as Double and accumulated in Double, for both _f32 and _f64;
// a result is rounded when stored (a gradient entry once per term that adds to it). Log-sum-exp is max-shifted and kept as the pair
// (m, log1p(sum_{j != argmax} exp(v_j - m))) so that differences of terms near zero keep their
// digits. Nothing reachable from C traps: sizes are checked with overflow-reporting arithmetic
// and every index is validated before the computing pass, which runs only on valid input.
// (Known weakness: scalar loops; the vectorised kernels come with the speed work.)
