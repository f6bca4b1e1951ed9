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
//   Terms.swift            the fear and hope terms, evaluated on any structure
//   Losses.swift           the catalogue: each loss as a recipe of terms (written once)
//   Hessian.swift          the diagonal of each loss's Hessian, a recipe per loss over the
//                          same primitives (an lse term's is q (1 - q))
//   Structure.swift        what a structure must provide: max with argmax, log-sum-exp with
//                          marginals, gold, oracle, expected cost, and gradient sinks
//   FlatCandidates.swift   the structure of one example whose candidates sit in a flat buffer
//                          (a dense row; later a candidate list)
//   Dense.swift            dense rows: validation and the loop over examples
//   Batch.swift            weights, ignored examples and reductions, shared by every structure
//   Options.swift          lk_options -> a validated Options value (recipe, reduction, ...)
//   Failure.swift          statuses, messages and the per-thread lk_last_error buffer
//   Real.swift             the storage types (Float, Double); all arithmetic is in Double
//   CAPI*.swift            the @c entry points: parse, validate, call the core; no math
//
// Numerics: every value is loaded as Double and accumulated in Double, for both _f32 and _f64;
// a result is rounded when stored (a gradient entry once per term that adds to it). Log-sum-exp is max-shifted and kept as the pair
// (m, log1p(sum_{j != argmax} exp(v_j - m))) so that differences of terms near zero keep their
// digits. Nothing reachable from C traps: sizes are checked with overflow-reporting arithmetic
// and every index is validated before the computing pass, which runs only on valid input.
// (Known weakness: scalar loops; the vectorised kernels come with the speed work.)
