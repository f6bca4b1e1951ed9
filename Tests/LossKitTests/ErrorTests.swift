// Every error path of lk_dense_f64 / lk_dense_f32 (include/losskit.h @return, DESIGN.md §2
// "Order of checks"): outputs are poisoned first, and each failure must return its status, leave
// every output untouched, and leave a non-empty lk_last_error() that names the argument (and
// the index, where there is one). Each success must reset lk_last_error() to "".
import CLossKit
import Glibc
import Testing

/// A valid call (4 examples, 3 classes, per-example costs, weights) that tests break one
/// argument at a time.
struct Fixture {
    var opt: lk_options?
    var n: Int64 = 4
    var k: Int64 = 3
    var scores: [Double]? = [0.5, -1, 2, 1, 0, -0.5, 0.25, 3, 1, -2, 0.75, 0]
    var gold: [Int32]? = [0, 1, 2, 1]
    /// 4 x 3 per-example costs; its first 9 entries double as a 3 x 3 class matrix.
    var cost: [Double]? = [0, 1, 2, 1, 0, 1, 2, 1, 0, 0.5, 0, 3]
    var weight: [Double]? = [1, 2, 0.5, 1]

    init(_ loss: Int32 = LK_LOSS_HINGE, layout: Int32 = LK_COST_PER_EXAMPLE,
         _ change: (inout lk_options) -> Void = { _ in }) {
        var o = Setup(loss: loss, reduction: LK_REDUCE_NONE, layout: layout).options
        change(&o)
        opt = o
    }

    init(_ c: LossCase, layout: Int32 = LK_COST_PER_EXAMPLE, _ change: (inout lk_options) -> Void = { _ in }) {
        var o = c.setup.with { $0.reduction = LK_REDUCE_NONE; $0.layout = layout }.options
        change(&o)
        opt = o
    }

    func with(_ change: (inout Fixture) -> Void) -> Fixture {
        var copy = self
        change(&copy)
        return copy
    }
}

/// Calls `f` in float64 and float32 (same inputs) and checks the outcome. For a failure: the
/// status, the untouched (poisoned) outputs, and a message that contains every string of
/// `mentions`, at least one of `mentionsAny` (e.g. a 2-d or a flat index: "scores[1, 1]" or
/// "scores[4]"), and none of `excludes`. For LK_OK: success and an empty message.
func expectStatus(_ expected: lk_status, _ f: Fixture, mentions: [String] = [], mentionsAny: [String] = [],
                  excludes: [String] = [],
                  _ comment: @autoclosure () -> String = "",
                  sourceLocation: SourceLocation = #_sourceLocation) {
    let lossCount = 4, gradCount = 16  // at least n and n*k of the fixture's valid sizes
    let out64: DenseOutput<Double> = callDense(f.opt, n: f.n, k: f.k, scores: f.scores, gold: f.gold,
                                               cost: f.cost, weight: f.weight,
                                               lossCount: lossCount, gradCount: gradCount)
    let out32: DenseOutput<Float> = callDense(f.opt, n: f.n, k: f.k, scores: f.scores?.map { Float($0) },
                                              gold: f.gold, cost: f.cost?.map { Float($0) },
                                              weight: f.weight?.map { Float($0) },
                                              lossCount: lossCount, gradCount: gradCount)
    let name = { (s: lk_status) in String(cString: lk_status_name(s)) }
    // lk_dense_hessian_* on the same inputs: the same status and message, and on failure every
    // output untouched, its Hessian buffer included.
    let hess64: DenseOutput<Double> = callDense(f.opt, n: f.n, k: f.k, scores: f.scores, gold: f.gold,
                                                cost: f.cost, weight: f.weight, lossCount: lossCount,
                                                gradCount: gradCount, hessCount: gradCount)
    let hess32: DenseOutput<Float> = callDense(f.opt, n: f.n, k: f.k, scores: f.scores?.map { Float($0) },
                                               gold: f.gold, cost: f.cost?.map { Float($0) },
                                               weight: f.weight?.map { Float($0) },
                                               lossCount: lossCount, gradCount: gradCount, hessCount: gradCount)
    for (width, plain, hessian) in [("f64", out64.status, hess64.status), ("f32", out32.status, hess32.status)] {
        #expect(hessian == plain,
                "\(comment()) [\(width)]: lk_dense_hessian gave \(name(hessian)), lk_dense \(name(plain))",
                sourceLocation: sourceLocation)
    }
    #expect(hess64.message == out64.message && hess32.message == out32.message,
            "\(comment()): lk_dense_hessian's message differs: \"\(hess64.message)\" / \"\(out64.message)\"",
            sourceLocation: sourceLocation)
    if expected != LK_OK {
        let poison32 = Float(poisonValue)
        #expect(hess64.loss.allSatisfy { $0 == poisonValue } && hess64.grad.allSatisfy { $0 == poisonValue }
                    && hess64.hess.allSatisfy { $0 == poisonValue }
                    && hess32.loss.allSatisfy { $0 == poison32 } && hess32.grad.allSatisfy { $0 == poison32 }
                    && hess32.hess.allSatisfy { $0 == poison32 },
                "\(comment()): lk_dense_hessian wrote an output although the call failed",
                sourceLocation: sourceLocation)
    }
    for (width, status, message, untouched) in [
        ("f64", out64.status, out64.message,
         out64.loss.allSatisfy { $0 == poisonValue } && out64.grad.allSatisfy { $0 == poisonValue }),
        ("f32", out32.status, out32.message,
         out32.loss.allSatisfy { $0 == Float(poisonValue) } && out32.grad.allSatisfy { $0 == Float(poisonValue) }),
    ] {
        let context = "\(comment()) [\(width)]"
        #expect(status == expected, "\(context): got \(name(status)) (\(message)), expected \(name(expected))",
                sourceLocation: sourceLocation)
        if expected == LK_OK {
            #expect(message == "", "\(context): lk_last_error() after a success is \"\(message)\"",
                    sourceLocation: sourceLocation)
            continue
        }
        #expect(untouched, "\(context): an output was written although the call failed", sourceLocation: sourceLocation)
        #expect(!message.isEmpty, "\(context): lk_last_error() is empty after a failure",
                sourceLocation: sourceLocation)
        for m in mentions {
            #expect(message.contains(m), "\(context): \"\(message)\" does not name \"\(m)\"",
                    sourceLocation: sourceLocation)
        }
        if !mentionsAny.isEmpty {
            #expect(mentionsAny.contains { message.contains($0) },
                    "\(context): \"\(message)\" names none of \(mentionsAny)", sourceLocation: sourceLocation)
        }
        for m in excludes {
            #expect(!message.contains(m), "\(context): \"\(message)\" names \"\(m)\"", sourceLocation: sourceLocation)
        }
    }
}

@Suite("Errors")
struct ErrorTests {
    @Test("the fixture itself succeeds for every loss and layout, and success clears lk_last_error")
    func fixtureIsValid() {
        for c in LossCase.all {
            for layout in allLayouts {
                // Fail first, so that the success has a message to clear.
                expectStatus(LK_ERR_NULL, Fixture(c, layout: layout).with { $0.opt = nil })
                expectStatus(LK_OK, Fixture(c, layout: layout), "\(c.name) \(layoutName(layout))")
            }
        }
    }

    // MARK: Options

    @Test("NULL opt is LK_ERR_NULL, before anything else")
    func nullOpt() {
        expectStatus(LK_ERR_NULL, Fixture().with { $0.opt = nil }, mentions: ["opt"])
        expectStatus(LK_ERR_NULL, Fixture().with {
            $0.opt = nil
            $0.n = -1
            $0.scores = nil
            $0.gold = [99, 99, 99, 99]
        }, mentions: ["opt"], "NULL opt with everything else wrong too")
        expectStatus(LK_ERR_NULL, Fixture().with { $0.opt = nil; $0.n = 0; $0.scores = nil; $0.gold = nil },
                     mentions: ["opt"], "NULL opt with n = 0")
    }

    @Test("opt->size smaller than 112 is LK_ERR_OPTION; 112 is fine")
    func optionSize() {
        for size: UInt32 in [0, 4, 8, 104, 111] {
            expectStatus(LK_ERR_OPTION, Fixture { $0.size = size }, mentions: ["size"], "size \(size)")
            expectStatus(LK_ERR_OPTION, Fixture { $0.size = size }.with { $0.n = 0; $0.scores = nil; $0.gold = nil },
                         mentions: ["size"], "size \(size), n = 0")
        }
        expectStatus(LK_OK, Fixture { $0.size = 112 })
    }

    @Test("unknown loss, reduction, cost_layout, hope, fear are LK_ERR_OPTION")
    func unknownEnums() {
        for loss: Int32 in [0, -1, 14, 99] {
            expectStatus(LK_ERR_OPTION, Fixture { $0.loss = loss }, mentions: ["loss"], "loss \(loss)")
        }
        for reduction: Int32 in [-1, 3, 99] {
            expectStatus(LK_ERR_OPTION, Fixture { $0.reduction = reduction }, mentions: ["reduction"],
                         "reduction \(reduction)")
        }
        for c in LossCase.all where c.model.readsCosts {
            for layout: Int32 in [-1, 3, 99] {
                expectStatus(LK_ERR_OPTION, Fixture(c) { $0.cost_layout = layout }, mentions: ["cost_layout"],
                             "\(c.name) cost_layout \(layout)")
            }
        }
        for hope: Int32 in [-1, 4, 99] {
            expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_HOPE_FEAR) { $0.hope = hope }, mentions: ["hope"],
                         "hope \(hope)")
        }
        // GOLD and ORACLE are hope terms only.
        for fear: Int32 in [-1, LK_TERM_GOLD, LK_TERM_ORACLE, 4, 99] {
            expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_HOPE_FEAR) { $0.fear = fear }, mentions: ["fear"],
                         "fear \(fear)")
        }
    }

    @Test("negative threads; NaN, negative or infinite cost_scale: LK_ERR_OPTION for every loss")
    func threadsAndCostScale() {
        for c in LossCase.all {
            for threads: Int32 in [-1, Int32.min] {
                expectStatus(LK_ERR_OPTION, Fixture(c) { $0.threads = threads }, mentions: ["threads"],
                             "\(c.name) threads \(threads)")
            }
            for alpha in [Double.nan, -1, -1e-300, .infinity, -.infinity] {
                expectStatus(LK_ERR_OPTION, Fixture(c) { $0.cost_scale = alpha }, mentions: ["cost_scale"],
                             "\(c.name) cost_scale \(alpha)")
            }
            expectStatus(LK_OK, Fixture(c) { $0.cost_scale = 0 }, "\(c.name) cost_scale 0")
            expectStatus(LK_OK, Fixture(c) { $0.threads = 3 }, "\(c.name) threads 3")
        }
    }

    @Test("label_smoothing outside [0, 1) or NaN is LK_ERR_OPTION for LOG")
    func labelSmoothingDomain() {
        for epsilon in [-0.1, -1e-300, 1, 1.5, .nan, .infinity, -.infinity] {
            expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_LOG) { $0.label_smoothing = epsilon },
                         mentions: ["label_smoothing"], "label_smoothing \(epsilon)")
        }
        for epsilon in [0, 0.5, 0.999999] {
            expectStatus(LK_OK, Fixture(LK_LOSS_LOG) { $0.label_smoothing = epsilon }, "label_smoothing \(epsilon)")
        }
    }

    @Test("square_k <= 0 or NaN/inf, square_m NaN/inf are LK_ERR_OPTION for SQUARED")
    func squareOptions() {
        for kappa in [0, -1, -0.0, .nan, .infinity] {
            expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_SQUARED) { $0.square_k = kappa }, mentions: ["square_k"],
                         "square_k \(kappa)")
        }
        for m in [Double.nan, .infinity, -.infinity] {
            expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_SQUARED) { $0.square_m = m }, mentions: ["square_m"],
                         "square_m \(m)")
        }
        expectStatus(LK_OK, Fixture(LK_LOSS_SQUARED) { $0.square_k = 1e-300; $0.square_m = -7 })
    }

    @Test("hope_scale / fear_scale negative, NaN or infinite are LK_ERR_OPTION for HOPE_FEAR")
    func hopeFearScales() {
        for value in [-1, -1e-300, Double.nan, .infinity] {
            for hope in [LK_TERM_GOLD, LK_TERM_ORACLE, LK_TERM_MAX, LK_TERM_LSE] {
                expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_HOPE_FEAR) { $0.hope = hope; $0.hope_scale = value },
                             mentions: ["hope_scale"], "hope \(hope) hope_scale \(value)")
                expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_HOPE_FEAR) { $0.hope = hope; $0.fear_scale = value },
                             mentions: ["fear_scale"], "hope \(hope) fear_scale \(value)")
            }
        }
    }

    @Test("options are validated only for the loss that uses them")
    func optionsOfOtherLosses() {
        for c in LossCase.all {
            let isLog = c.setup.loss == LK_LOSS_LOG
            let isSquared = c.setup.loss == LK_LOSS_SQUARED
            let isHopeFear = c.setup.loss == LK_LOSS_HOPE_FEAR
            if !isLog {
                expectStatus(LK_OK, Fixture(c) { $0.label_smoothing = 5 }, "\(c.name): label_smoothing = 5")
                expectStatus(LK_OK, Fixture(c) { $0.label_smoothing = .nan }, "\(c.name): label_smoothing = NaN")
            }
            if !isSquared {
                expectStatus(LK_OK, Fixture(c) { $0.square_k = -1; $0.square_m = .nan },
                             "\(c.name): square_k, square_m")
            }
            if !isHopeFear {
                expectStatus(LK_OK, Fixture(c) {
                    $0.hope = 99
                    $0.fear = 99
                    $0.hope_scale = .nan
                    $0.fear_scale = -1
                }, "\(c.name): hope, fear and their scales")
            }
            if !c.model.readsCosts {
                expectStatus(LK_OK, Fixture(c) { $0.cost_layout = 99 }, "\(c.name): cost_layout = 99")
            }
            // The reserved L-Softmax / angular fields are read by no dense loss.
            expectStatus(LK_OK, Fixture(c) {
                $0.margin = -5
                $0.lambda = .nan
                $0.angular_scale = -1
                $0.angular_margin = .nan
            }, "\(c.name): reserved fields")
        }
        // HOPE_FEAR reads costs only when a scale or the oracle needs them: (GOLD, LSE, f = 0).
        expectStatus(LK_OK, Fixture(LK_LOSS_HOPE_FEAR) { $0.fear_scale = 0; $0.cost_layout = 99 },
                     "HOPE_FEAR (GOLD, LSE, f=0): cost_layout = 99")
        expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_HOPE_FEAR) { $0.cost_layout = 99 }, mentions: ["cost_layout"],
                     "HOPE_FEAR (GOLD, LSE, f=1): cost_layout = 99")
    }

    @Test("options are checked even when n = 0")
    func optionsCheckedWhenEmpty() {
        let bad: [(String, (inout lk_options) -> Void)] = [
            ("reduction", { $0.reduction = 7 }), ("threads", { $0.threads = -2 }),
            ("cost_scale", { $0.cost_scale = .nan }), ("loss", { $0.loss = 99 }),
        ]
        for (name, change) in bad {
            expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_HINGE, change).with {
                $0.n = 0; $0.scores = nil; $0.gold = nil; $0.cost = nil; $0.weight = nil
            }, mentions: [name], "n = 0, bad \(name)")
        }
        expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_LOG) { $0.label_smoothing = 1 }.with {
            $0.n = 0; $0.scores = nil; $0.gold = nil
        }, mentions: ["label_smoothing"], "n = 0, label_smoothing = 1")
        expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_SQUARED) { $0.square_k = 0 }.with {
            $0.n = 0; $0.scores = nil; $0.gold = nil
        }, mentions: ["square_k"], "n = 0, square_k = 0")
        expectStatus(LK_ERR_OPTION, Fixture(LK_LOSS_HOPE_FEAR) { $0.fear = LK_TERM_GOLD }.with {
            $0.n = 0; $0.scores = nil; $0.gold = nil
        }, mentions: ["fear"], "n = 0, fear = GOLD")
    }

    // MARK: Pointers

    @Test("NULL scores or gold with n > 0 is LK_ERR_NULL; NULL is fine when n = 0")
    func nullInputs() {
        for c in LossCase.all {
            expectStatus(LK_ERR_NULL, Fixture(c).with { $0.scores = nil }, mentions: ["scores"], "\(c.name)")
            expectStatus(LK_ERR_NULL, Fixture(c).with { $0.gold = nil }, mentions: ["gold"], "\(c.name)")
            for layout in allLayouts {
                expectStatus(LK_OK, Fixture(c, layout: layout).with {
                    $0.n = 0; $0.scores = nil; $0.gold = nil; $0.cost = nil; $0.weight = nil
                }, "\(c.name) \(layoutName(layout)) n = 0 with NULL pointers")
            }
        }
    }

    @Test("NULL cost is LK_ERR_NULL in PER_EXAMPLE / CLASS_MATRIX for a loss that reads costs only")
    func nullCost() {
        for c in LossCase.all {
            for layout in [LK_COST_PER_EXAMPLE, LK_COST_CLASS_MATRIX] {
                let f = Fixture(c, layout: layout).with { $0.cost = nil }
                if c.model.readsCosts {
                    expectStatus(LK_ERR_NULL, f, mentions: ["cost"], "\(c.name) \(layoutName(layout))")
                } else {
                    expectStatus(LK_OK, f, "\(c.name) \(layoutName(layout)) reads no costs")
                }
            }
            expectStatus(LK_OK, Fixture(c, layout: LK_COST_ZERO_ONE).with { $0.cost = nil }, "\(c.name) ZERO_ONE")
        }
    }

    // MARK: Sizes

    @Test("n < 0, k < 0, k = 0 with n > 0, and overflowing n*k or k*k are LK_ERR_SIZE")
    func sizes() {
        expectStatus(LK_ERR_SIZE, Fixture().with { $0.n = -1 }, mentions: ["n"], "n = -1")
        expectStatus(LK_ERR_SIZE, Fixture().with { $0.n = Int64.min }, mentions: ["n"], "n = Int64.min")
        expectStatus(LK_ERR_SIZE, Fixture().with { $0.k = -1 }, mentions: ["k"], "k = -1")
        expectStatus(LK_ERR_SIZE, Fixture().with { $0.k = 0 }, mentions: ["k"], "k = 0, n = 4")
        expectStatus(LK_OK, Fixture().with { $0.k = 0; $0.n = 0 }, "k = 0, n = 0")
        expectStatus(LK_ERR_SIZE, Fixture().with { $0.n = 1 << 40; $0.k = 1 << 40 }, "n = k = 2^40")
        expectStatus(LK_ERR_SIZE, Fixture().with { $0.n = Int64.max; $0.k = 2 }, "n = Int64.max, k = 2")
        // 2^31 * 2^31 = 2^62 elements fits in Int64, but not 8 * 2^62 bytes.
        expectStatus(LK_ERR_SIZE, Fixture().with { $0.n = 1 << 31; $0.k = 1 << 31 }, "n = k = 2^31 (bytes overflow)")
        // The class matrix is k*k: n*k = 2^33 fits, k*k = 2^64 does not. The gold is made invalid
        // so that a missed size check shows as LK_ERR_LABEL instead of reading out of bounds.
        expectStatus(LK_ERR_SIZE, Fixture(LK_LOSS_HINGE, layout: LK_COST_CLASS_MATRIX).with {
            $0.n = 2; $0.k = 1 << 32; $0.gold = [-5, -5]
        }, "class matrix k = 2^32")
    }

    // MARK: Labels

    @Test("gold outside [0, k) that is not ignore_label is LK_ERR_LABEL, naming gold[i]")
    func goldOutOfRange() {
        for c in LossCase.all {
            for g: Int32 in [-1, -99, -101, 3, 4, 12345, Int32.max, Int32.min] {
                expectStatus(LK_ERR_LABEL, Fixture(c).with { $0.gold![2] = g }, mentions: ["gold[2]"],
                             "\(c.name) gold[2] = \(g)")
            }
            // Valid after all: the ignore label, and any label on a zero-weight row.
            expectStatus(LK_OK, Fixture(c).with { $0.gold![2] = -100 }, "\(c.name) gold = ignore_label")
            expectStatus(LK_OK, Fixture(c) { $0.ignore_label = 12345 }.with { $0.gold![2] = 12345 },
                         "\(c.name) gold = ignore_label = 12345")
            expectStatus(LK_OK, Fixture(c).with { $0.gold![2] = 12345; $0.weight![2] = 0 }, "\(c.name) zero weight")
        }
        // The first bad label (lowest index) is reported.
        expectStatus(LK_ERR_LABEL, Fixture().with { $0.gold![1] = 7; $0.gold![3] = -1 }, mentions: ["gold[1]"],
                     excludes: ["gold[3]"], "two bad labels")
    }

    // MARK: Values

    @Test("+inf score, an all-masked row, a masked gold under a gold-score loss are LK_ERR_DOMAIN")
    func scoreDomain() {
        for c in LossCase.all {
            expectStatus(LK_ERR_DOMAIN, Fixture(c).with { $0.scores![4] = .infinity }, mentions: ["scores"],
                         mentionsAny: ["scores[1, 1]", "scores[4]"], "\(c.name) +inf score")
            expectStatus(LK_ERR_DOMAIN, Fixture(c).with { $0.scores![3...5] = [-.infinity, -.infinity, -.infinity] },
                         mentionsAny: ["row 1", "scores[1", "example 1", "[1]"], "\(c.name) all-masked row 1")
            // Row 1's gold is class 1, score index 4.
            let maskedGold = Fixture(c).with { $0.scores![4] = -.infinity }
            if c.model.usesGoldScore {
                expectStatus(LK_ERR_DOMAIN, maskedGold, mentions: ["scores"],
                             mentionsAny: ["scores[1, 1]", "scores[4]"], "\(c.name) masked gold")
            } else {
                expectStatus(LK_OK, maskedGold, "\(c.name) masked gold is fine: the loss does not use s[gold]")
            }
            // NaN is not an error: it propagates (PropertyTests).
            expectStatus(LK_OK, Fixture(c).with { $0.scores![4] = .nan }, "\(c.name) NaN score")
        }
    }

    @Test("a non-finite cost that is read is LK_ERR_DOMAIN; unread costs may be anything")
    func costDomain() {
        for c in LossCase.all {
            for bad in [Double.nan, .infinity, -.infinity] {
                // Per-example: row 2's class 1 (scores[7] = 3, unmasked).
                let perExample = Fixture(c, layout: LK_COST_PER_EXAMPLE).with { $0.cost![7] = bad }
                // Class matrix: row 2 = gold 2's costs (used by example 2).
                let matrix = Fixture(c, layout: LK_COST_CLASS_MATRIX).with { $0.cost![7] = bad }
                if c.model.readsCosts {
                    expectStatus(LK_ERR_DOMAIN, perExample, mentionsAny: ["cost[2, 1]", "cost[7]"],
                                 "\(c.name) per-example cost \(bad)")
                    expectStatus(LK_ERR_DOMAIN, matrix, mentionsAny: ["cost[2, 1]", "cost[7]"],
                                 "\(c.name) class-matrix cost \(bad)")
                } else {
                    expectStatus(LK_OK, perExample, "\(c.name) reads no costs")
                    expectStatus(LK_OK, matrix, "\(c.name) reads no costs")
                }
                // On a masked class the cost is not read.
                expectStatus(LK_OK, perExample.with { $0.scores![7] = -.infinity },
                             "\(c.name) cost \(bad) on a masked class")
                // Class-matrix row 0 is read only by examples of gold 0: make example 0's gold 1.
                expectStatus(LK_OK, Fixture(c, layout: LK_COST_CLASS_MATRIX).with {
                    $0.cost![1] = bad
                    $0.gold![0] = 1
                }, "\(c.name) cost \(bad) in an unused class-matrix row")
                // A zero-weight or ignored row's costs are not read.
                expectStatus(LK_OK, perExample.with { $0.weight![2] = 0 }, "\(c.name) cost \(bad) on a zero-weight row")
                expectStatus(LK_OK, perExample.with { $0.gold![2] = -100 }, "\(c.name) cost \(bad) on an ignored row")
            }
        }
    }

    @Test("a negative, NaN or infinite weight is LK_ERR_DOMAIN, naming weight[i]")
    func weightDomain() {
        for c in LossCase.all {
            for w in [-1, -1e-30, Double.nan, .infinity, -.infinity] {
                expectStatus(LK_ERR_DOMAIN, Fixture(c).with { $0.weight![2] = w }, mentions: ["weight[2]"],
                             "\(c.name) weight \(w)")
            }
            expectStatus(LK_OK, Fixture(c).with { $0.weight![2] = 0 }, "\(c.name) weight 0")
            expectStatus(LK_OK, Fixture(c).with { $0.weight![2] = -0.0 }, "\(c.name) weight -0")
        }
    }

    @Test("a summed weight that overflows under MEAN is LK_ERR_DOMAIN; under SUM it is not")
    func summedWeightOverflow() {
        let huge = Fixture(LK_LOSS_LOG) { $0.reduction = LK_REDUCE_MEAN }.with {
            $0.weight = [Double.greatestFiniteMagnitude, Double.greatestFiniteMagnitude, 1, 1]
        }
        // float32 rounds 1.8e308 to inf (a weight error); float64 fails on the sum only.
        let out: DenseOutput<Double> = callDense(huge.opt, n: huge.n, k: huge.k, scores: huge.scores,
                                                 gold: huge.gold, cost: huge.cost, weight: huge.weight,
                                                 lossCount: 4, gradCount: 16)
        #expect(out.status == LK_ERR_DOMAIN)
        #expect(out.message.contains("summed weight"), "\(out.message)")
        #expect(out.loss.allSatisfy { $0 == poisonValue } && out.grad.allSatisfy { $0 == poisonValue })
        let sum = Fixture(LK_LOSS_LOG) { $0.reduction = LK_REDUCE_SUM }.with { $0.weight = huge.weight }
        let outSum: DenseOutput<Double> = callDense(sum.opt, n: sum.n, k: sum.k, scores: sum.scores,
                                                    gold: sum.gold, cost: sum.cost, weight: sum.weight,
                                                    lossCount: 4, gradCount: 16)
        #expect(outSum.status == LK_OK, "\(outSum.message)")
    }

    @Test("a finite cost that overflows once scaled (cost_scale, term scales) is LK_ERR_DOMAIN")
    func scaledCostOverflow() {
        // SOFT_RAMP reads c = cost_scale * cost; 1e30 * 1e280 is not finite (in float32 the cost
        // itself rounds to +inf, an error naming it too).
        let f = Fixture(LK_LOSS_SOFT_RAMP) { $0.cost_scale = 1e30 }.with { $0.cost![4] = 1e280 }
        let out: DenseOutput<Double> = callDense(f.opt, n: f.n, k: f.k, scores: f.scores, gold: f.gold,
                                                 cost: f.cost, weight: f.weight, lossCount: 4, gradCount: 16)
        #expect(out.status == LK_ERR_DOMAIN)
        #expect(out.message.contains("cost[1, 1]"), "\(out.message)")
        #expect(out.loss.allSatisfy { $0 == poisonValue } && out.grad.allSatisfy { $0 == poisonValue })
        // HOPE_FEAR multiplies by the fear scale too: 1e30 * 1e280 overflows, 1e30 * 1e-30 does not.
        let hopeFear = Fixture(LK_LOSS_HOPE_FEAR) { $0.fear_scale = 1e30 }
            .with { $0.cost = $0.cost!.map { $0 * 1e-30 } }
        expectStatus(LK_OK, hopeFear)
        expectStatus(LK_ERR_DOMAIN, hopeFear.with { $0.cost![4] = 1e280 }, mentionsAny: ["cost[1, 1]"])
    }

    @Test("""
          cost_scale times a term scale that overflows is LK_ERR_OPTION; \
          a score plus its scaled cost that overflows is LK_ERR_DOMAIN
          """)
    func scaledOptionOverflow() {
        // 1e200 * 1e200 is not finite: no cost, not even the implicit 0/1 one, can be scaled.
        let options = Fixture(LK_LOSS_HOPE_FEAR, layout: LK_COST_ZERO_ONE) {
            $0.cost_scale = 1e200
            $0.fear_scale = 1e200
        }
        expectStatus(LK_ERR_OPTION, options, mentions: ["cost_scale"])
        // ... but only for the losses that read costs (LOG reads none).
        expectStatus(LK_OK, Fixture(LK_LOSS_LOG) { $0.cost_scale = 1e300 })
        // A finite score near DBL_MAX plus a finite scaled cost overflows (float64 only: in
        // float32 the score itself rounds to +inf, which is an error of its own).
        let f = Fixture(LK_LOSS_SOFTMAX_MARGIN, layout: LK_COST_ZERO_ONE) { $0.cost_scale = 1e308 }
            .with { $0.scores![4] = 1.7e308 }
        let out: DenseOutput<Double> = callDense(f.opt, n: f.n, k: f.k, scores: f.scores, gold: f.gold,
                                                 cost: f.cost, weight: f.weight, lossCount: 4, gradCount: 16)
        #expect(out.status == LK_ERR_DOMAIN)
        #expect(out.message.contains("scores[1, 1]"), "\(out.message)")
        #expect(out.loss.allSatisfy { $0 == poisonValue } && out.grad.allSatisfy { $0 == poisonValue })
    }

    // MARK: Order of checks

    @Test("order: NULL opt, options, pointers, sizes, labels, values; lowest index first")
    func orderOfChecks() {
        // An option and a NULL pointer: the option.
        expectStatus(LK_ERR_OPTION, Fixture { $0.reduction = 9 }.with { $0.scores = nil }, mentions: ["reduction"])
        // An option and a bad size or label: the option.
        expectStatus(LK_ERR_OPTION, Fixture { $0.cost_scale = -1 }.with { $0.n = -1 }, mentions: ["cost_scale"])
        expectStatus(LK_ERR_OPTION, Fixture { $0.threads = -1 }.with { $0.gold![0] = 99 }, mentions: ["threads"])
        // A NULL pointer and a bad size: the pointer.
        expectStatus(LK_ERR_NULL, Fixture().with { $0.scores = nil; $0.k = -1 }, mentions: ["scores"])
        expectStatus(LK_ERR_NULL, Fixture().with { $0.gold = nil; $0.k = 0 }, mentions: ["gold"])
        expectStatus(LK_ERR_NULL, Fixture().with { $0.cost = nil; $0.n = 1 << 40; $0.k = 1 << 40 }, mentions: ["cost"])
        // A NULL pointer and a bad label or value: the pointer.
        expectStatus(LK_ERR_NULL, Fixture().with { $0.cost = nil; $0.gold![0] = 99; $0.scores![0] = .infinity },
                     mentions: ["cost"])
        // A bad size and a bad label: the size.
        expectStatus(LK_ERR_SIZE, Fixture().with { $0.k = 0; $0.gold![0] = 99 })
        // A bad label and a bad value (even in an earlier row): the label.
        expectStatus(LK_ERR_LABEL, Fixture().with { $0.scores![0] = .infinity; $0.gold![3] = 3 }, mentions: ["gold[3]"])
        expectStatus(LK_ERR_LABEL, Fixture().with { $0.weight![0] = .nan; $0.gold![2] = -1 }, mentions: ["gold[2]"])
        expectStatus(LK_ERR_LABEL, Fixture().with { $0.cost![0] = .nan; $0.gold![1] = 5 }, mentions: ["gold[1]"])
        expectStatus(LK_ERR_LABEL, Fixture(LK_LOSS_LOG).with { $0.scores![0] = -.infinity; $0.gold![3] = 5 },
                     mentions: ["gold[3]"], "masked gold (row 0) and a bad label (row 3)")
        // Values: the lowest index is reported.
        expectStatus(LK_ERR_DOMAIN, Fixture().with { $0.weight![1] = .nan; $0.scores![10] = .infinity },
                     mentions: ["weight[1]"], excludes: ["scores"])
        expectStatus(LK_ERR_DOMAIN, Fixture().with { $0.scores![4] = .infinity; $0.weight![3] = -1 },
                     mentionsAny: ["scores[1, 1]", "scores[4]"], excludes: ["weight"])
        expectStatus(LK_ERR_DOMAIN, Fixture().with { $0.scores![1] = .infinity; $0.cost![10] = .nan },
                     mentionsAny: ["scores[0, 1]", "scores[1]"], excludes: ["cost"])
        expectStatus(LK_ERR_DOMAIN, Fixture().with { $0.cost![4] = .nan; $0.scores![11] = .infinity },
                     mentionsAny: ["cost[1, 1]", "cost[4]"], excludes: ["scores"])
    }
}
