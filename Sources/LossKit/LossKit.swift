// LossKit — design (keep this note true).
//
// THE IDEA. A loss is "fear minus hope" (DESIGN.md §1): per example, over candidate outputs y with
// scores s[y] and costs c[y] = cost_scale * cost(gold, y),
//
//     loss = F(s + f c) - H(s - h c)        F in {max, lse},  H in {gold, oracle, max, lse}
//
// with a few recipes beside it (risk, the square losses, label smoothing). A loss is a recipe
// (Losses/Catalogue.swift) and knows nothing of how candidates are stored; a structure (dense
// rows, candidate lists, linear chains) provides exactly what the recipes call
// (Structures/Structure.swift: its fused fear - hope, its expected cost, and for enumerable
// candidates the sums the square losses need). Every loss runs on every structure that provides
// what it calls; `Options.parse` rejects the rest with LK_ERR_UNSUPPORTED.
//
// THE TREE.
//   LossKit.swift   this note
//   Losses/         the terms of fear - hope (Terms), the catalogue: each preset loss (LK_LOSS_*)
//                   mapped to its recipe, and each recipe's loss (Catalogue); the diagonal of each
//                   recipe's Hessian (Hessian); CosFace / ArcFace, the log loss over logits made
//                   from cosines on dense rows (Angular); z-loss and logit soft-capping, the
//                   shaping of dense scores around a loss (Shaping)
//   Structures/     the protocol (Structure); one example whose candidates sit in flat buffers
//                   (FlatCandidates: its fear - hope keeps a log-sum-exp's exps in the gradient
//                   row and turns them into the gradient in one pass), a batch of them — values
//                   phase and computing pass (FlatBatch) — laid out as dense rows (Dense) or
//                   candidate lists (Lists); linear chains (Chains/: the model, the
//                   call's set-up, forward-backward in scaled or log space, paths and Viterbi,
//                   loss, decoding, gradient, risk); L-Softmax over features
//                   and class weights (LSoftmax: products by Kernels/MatrixKernels, then the log
//                   loss of each row); the fused linear + loss (Linear: logits x w^T + b made
//                   tile by tile with an online max / log-sum-exp, recomputed for the gradient,
//                   never n x k of them at once); dense rows whose classes are split across
//                   processes (VocabParallel: Linear's per-row terms as local maxima and sums
//                   that the caller's MAX and SUM all-reduces combine, three phases)
//   Kernels/        the vector kernels, written once over the storage type (StorageFloat: Float or
//                   Double and its SIMD vector, exp): rows (RowKernels), tag vectors of the chains
//                   (TagVectors), matrix products (MatrixKernels); bfloat16 storage (BFloat16:
//                   an input read in place or widened a row at a time, `Source`, and a gradient
//                   written in place or narrowed from float, `GradientSink`, so that the _bf16
//                   entry points are the float code on widened rows)
//   Runtime/        lk_options to a validated Options (Options); the order of the checks, into
//                   which each structure plugs its own (Validation); the value checks of flat
//                   candidates (FlatValidation); weights, ignored examples, reductions and the
//                   computing pass over chunks (Batch); threads (Parallel); scratch memory
//                   (Scratch); statuses, messages and lk_last_error (Failure); the build's CPU
//                   level (Variant)
//   CAPI/           the @c @implementation entry points of include/losskit.h: each forwards to
//                   the CPU-level build if one is loaded, else to its structure; no math
//   ../CLossKit/    the CPU-level loader and its checks, with the list of forwarded functions
//                   whose pointer types come from the header's declarations (internal.c,
//                   include/losskit_internal.h)
//
// A CALL. CAPI -> forward to liblosskit-avx2.so / -avx512.so when the CPU has it (CLossKit) ->
// the structure's `compute`: options (Options.parse), then its `Call` (a CallChecks) validates —
// pointers, sizes and byte sizes, labels, values: the order of DESIGN.md §2, written once in
// Validation.swift, nothing written before every check passed — then
// Batch.run: examples in chunks whose boundaries depend on the input only, so any thread count
// gives the same bits; per example, recipe.loss(on: structure) sets the example's gradient and
// returns its loss; the weighted sums are added in chunk order. Where an example's loss is
// beyond double but its weighted loss is not, Batch.run asks the structure's `weighted` closure
// for coefficient x (F - H), formed from halved parts.
//
// NUMERICS. Values are read in the input type (bfloat16: widened to float) and vector kernels
// compute in it; sums over candidates accumulate in the input type within blocks of 32 vectors
// and in double across blocks; sums over the batch, and every value a result is formed from (a
// term's shift and rest, a denominator), are double. A log-sum-exp is kept as the pair (m,
// log1p(sum_{j != argmax} exp(v_j - m))) centred on the argmax, so that the difference of two
// terms near zero keeps its digits; p - 1 at an argmax is formed as -rest / (1 + rest). Where a
// sum of finite terms could overflow (weights times losses, costs near the largest value), a
// second sum in scaled units stands by; where a gradient entry's terms overflow the type
// (softcap, z-loss: Shaping.finish), the loss is rerun in double with a power-of-two
// coefficient. Nothing reachable from C traps: sizes are checked with overflow-reporting
// arithmetic, byte sizes must exist, every index is validated before the computing pass.
//
// DUPLICATION ON PURPOSE. The kernels exist once per CPU level (the same source compiled three
// times) and are generic over Float / Double, except the vector exp, written per type (its
// polynomial and bit layout differ); the row kernels come in specialised row variants (plain,
// 0/1 cost, per-candidate cost, centred) so that each specialises without a branch per vector;
// chains have a scaled forward-backward and a log-space one (the second only where the first
// would over- or underflow), hence two forms of adding marginals and two risk tables; each C
// entry point is its own @implementation per precision (_f32 / _f64: a forward and one call);
// each structure's `Call` lists its own arguments and required pointers in the same shape (what
// it plugs into the checks).
//
// ADDING. A preset loss that is a new recipe of existing terms: its LK_LOSS_* value and formula
// in the header, its case in Recipe.preset (Losses/Catalogue.swift), and the tests' registries
// (Tests/LossKitTests/LossRegistry.swift, bindings/python/tests/reference.py) — plus its Python
// name in bindings/python/losskit/_native.py. A new structure: its entry points in the header,
// its folder under Structures/ (a LossStructure conformance, a `Call` conforming to CallChecks,
// and a `compute` that validates it and calls Batch.run), its @implementation functions in CAPI/,
// one line per function in the list of forwarded functions (losskit_internal.h; make
// test-library checks it against the header), and its tests. A new entry point of an existing
// structure: the header, its function in CAPI/, the list line, its tests.
