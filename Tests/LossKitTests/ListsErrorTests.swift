// Every error path of lk_lists_f64 / lk_lists_f32 (include/losskit.h "Candidate lists" @return,
// DESIGN.md §2 "Order of checks", §4.3): outputs are poisoned first (with a guard element past
// each), and each failure must return its status, leave every output untouched, and leave a
// non-empty lk_last_error() that names the argument (and the example or flat index, where
// there is one). Each success must reset lk_last_error() to "" — the helper makes a failing
// call first, so that there is a message to reset.
import CLossKit
import Glibc
import Testing

/// A valid call that tests break one argument at a time: 4 lists of 3, 1, 4 and 2 candidates,
/// costs, weights, REDUCE_NONE. List 3's gold is -1: its oracle is candidate 1 (cost 0.25).
///
///     list  offsets  scores                 gold  cost                 weight
///     0     0..<3    [0.5, -1, 2]           1     [1, 0, 2]            1
///     1     3..<4    [1]                    0     [0]                  2
///     2     4..<8    [0, -0.5, 0.25, 3]     2     [1, 0.5, 0, 2]       0.5
///     3     8..<10   [1, -2]                -1    [0.5, 0.25]          1
struct ListsFixture {
    var opt: lk_options?
    var n: Int64 = 4
    var offsets: [Int64]? = [0, 3, 4, 8, 10]
    var scores: [Double]? = [0.5, -1, 2, 1, 0, -0.5, 0.25, 3, 1, -2]
    var gold: [Int32]? = [1, 0, 2, -1]
    var cost: [Double]? = [1, 0, 2, 0, 1, 0.5, 0, 2, 0.5, 0.25]
    var weight: [Double]? = [1, 2, 0.5, 1]

    init(_ loss: Int32 = LK_LOSS_HINGE, _ change: (inout lk_options) -> Void = { _ in }) {
        var o = Setup(loss: loss, reduction: LK_REDUCE_NONE).options
        change(&o)
        opt = o
    }

    init(_ c: LossCase, _ change: (inout lk_options) -> Void = { _ in }) {
        var o = c.setup.with { $0.reduction = LK_REDUCE_NONE }.options
        change(&o)
        opt = o
    }

    func with(_ change: (inout ListsFixture) -> Void) -> ListsFixture {
        var copy = self
        change(&copy)
        return copy
    }

    /// The fixture with list i's candidates removed (its scores and costs dropped, the later
    /// offsets moved down): list i becomes empty.
    func emptying(_ i: Int) -> ListsFixture {
        var copy = self
        let offsets = self.offsets!
        let (start, end) = (Int(offsets[i]), Int(offsets[i + 1]))
        copy.scores!.removeSubrange(start..<end)
        copy.cost?.removeSubrange(start..<end)
        for at in (i + 1)..<offsets.count { copy.offsets![at] -= Int64(end - start) }
        return copy
    }
}

/// Calls `f` in float64 and float32 (same inputs) and checks the outcome. For a failure: the
/// status, the untouched (poisoned) outputs and guards, and a message that contains every string
/// of `mentions`, at least one of `mentionsAny`, and none of `excludes`. For LK_OK: after a
/// deliberately failing call (NULL opt) has set a message, success and an empty message.
func expectListsStatus(_ expected: lk_status, _ f: ListsFixture, mentions: [String] = [],
                       mentionsAny: [String] = [], excludes: [String] = [],
                       _ comment: @autoclosure () -> String = "",
                       sourceLocation: SourceLocation = #_sourceLocation) {
    let lossCount = 8, gradCount = 16  // at least n and offsets[n] of every valid variant
    let name = { (s: lk_status) in String(cString: lk_status_name(s)) }
    func call<T: ListsScalar>(_: T.Type) -> ListsOutput<T> {
        if expected == LK_OK {
            let failed: ListsOutput<T> = callLists(nil, n: 0, offsets: nil, scores: nil, gold: nil,
                                                   lossCount: nil, gradCount: nil)
            #expect(failed.status == LK_ERR_NULL && !failed.message.isEmpty, "the priming failure did not fail",
                    sourceLocation: sourceLocation)
        }
        return callLists(f.opt, n: f.n, offsets: f.offsets, scores: f.scores?.map { T($0) }, gold: f.gold,
                         cost: f.cost?.map { T($0) }, weight: f.weight?.map { T($0) },
                         lossCount: lossCount, gradCount: gradCount)
    }
    let out64 = call(Double.self), out32 = call(Float.self)
    // lk_lists_hessian_* on the same inputs: the same status and message, and the same checks
    // of its outputs, its Hessian buffer included.
    func hessianCall<T: ListsScalar>(_: T.Type) -> ListsOutput<T> {
        if expected == LK_OK {
            let _: ListsOutput<T> = callLists(nil, n: 0, offsets: nil, scores: nil, gold: nil,
                                              lossCount: nil, gradCount: nil)
        }
        return callLists(f.opt, n: f.n, offsets: f.offsets, scores: f.scores?.map { T($0) }, gold: f.gold,
                         cost: f.cost?.map { T($0) }, weight: f.weight?.map { T($0) },
                         lossCount: lossCount, gradCount: gradCount, hessCount: gradCount)
    }
    let hess64 = hessianCall(Double.self), hess32 = hessianCall(Float.self)
    #expect(hess64.status == out64.status && hess32.status == out32.status
                && hess64.message == out64.message && hess32.message == out32.message,
            """
            \(comment()): lk_lists_hessian gave \(name(hess64.status)) "\(hess64.message)", \
            lk_lists \(name(out64.status)) "\(out64.message)"
            """,
            sourceLocation: sourceLocation)
    for (width, status, message, untouched, guards) in [
        ("f64", out64.status, out64.message, out64.untouched, out64.guardsIntact),
        ("f32", out32.status, out32.message, out32.untouched, out32.guardsIntact),
        ("hessian f64", hess64.status, hess64.message, hess64.untouched, hess64.guardsIntact),
        ("hessian f32", hess32.status, hess32.message, hess32.untouched, hess32.guardsIntact),
    ] {
        let context = "\(comment()) [\(width)]"
        #expect(status == expected, "\(context): got \(name(status)) (\(message)), expected \(name(expected))",
                sourceLocation: sourceLocation)
        if expected == LK_OK {
            #expect(message == "", "\(context): lk_last_error() after a success is \"\(message)\"",
                    sourceLocation: sourceLocation)
            #expect(guards, "\(context): written past the end of an output", sourceLocation: sourceLocation)
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

/// Losses whose formula uses the gold score (a masked gold is LK_ERR_DOMAIN).
private func usesGold(_ c: LossCase) -> Bool { c.model.usesGoldScore }

@Suite("Lists errors")
struct ListsErrorTests {
    @Test("the fixture succeeds for every loss and reduction, and success clears lk_last_error")
    func fixtureIsValid() {
        for c in listCases {
            for reduction in allReductions {
                expectListsStatus(LK_OK, ListsFixture(c) { $0.reduction = reduction },
                                  "\(c.name) \(reductionName(reduction))")
            }
            expectListsStatus(LK_OK, ListsFixture(c).with { $0.weight = nil }, "\(c.name) NULL weight")
        }
    }

    // MARK: Options

    @Test("NULL opt is LK_ERR_NULL, before anything else")
    func nullOpt() {
        expectListsStatus(LK_ERR_NULL, ListsFixture().with { $0.opt = nil }, mentions: ["opt"])
        expectListsStatus(LK_ERR_NULL, ListsFixture().with {
            $0.opt = nil
            $0.n = -1
            $0.offsets = nil
            $0.scores = nil
            $0.gold = [99, 99, 99, 99]
        }, mentions: ["opt"], "NULL opt with everything else wrong too")
        expectListsStatus(LK_ERR_NULL, ListsFixture().with {
            $0.opt = nil; $0.n = 0; $0.offsets = nil; $0.scores = nil; $0.gold = nil
        }, mentions: ["opt"], "NULL opt with n = 0")
    }

    @Test("opt->size smaller than 112 is LK_ERR_OPTION, also when n = 0; 112 is fine")
    func optionSize() {
        for size: UInt32 in [0, 4, 8, 104, 111] {
            expectListsStatus(LK_ERR_OPTION, ListsFixture { $0.size = size }, mentions: ["size"], "size \(size)")
            expectListsStatus(LK_ERR_OPTION, ListsFixture { $0.size = size }.with {
                $0.n = 0; $0.offsets = nil; $0.scores = nil; $0.gold = nil
            }, mentions: ["size"], "size \(size), n = 0")
        }
        expectListsStatus(LK_OK, ListsFixture { $0.size = 112 })
    }

    @Test("unknown loss, reduction, hope, fear are LK_ERR_OPTION")
    func unknownEnums() {
        for loss: Int32 in [0, -1, 14, 99, Int32.min] {
            expectListsStatus(LK_ERR_OPTION, ListsFixture { $0.loss = loss }, mentions: ["loss"], "loss \(loss)")
        }
        for reduction: Int32 in [-1, 3, 99] {
            expectListsStatus(LK_ERR_OPTION, ListsFixture { $0.reduction = reduction }, mentions: ["reduction"],
                              "reduction \(reduction)")
        }
        for hope: Int32 in [-1, 4, 99] {
            expectListsStatus(LK_ERR_OPTION, ListsFixture(LK_LOSS_HOPE_FEAR) { $0.hope = hope }, mentions: ["hope"],
                              "hope \(hope)")
        }
        for fear: Int32 in [-1, LK_TERM_GOLD, LK_TERM_ORACLE, 4, 99] {
            expectListsStatus(LK_ERR_OPTION, ListsFixture(LK_LOSS_HOPE_FEAR) { $0.fear = fear }, mentions: ["fear"],
                              "fear \(fear)")
        }
    }

    @Test("negative threads; NaN, negative or infinite cost_scale; bad square and hope/fear options")
    func badOptionValues() {
        for c in listCases {
            for threads: Int32 in [-1, Int32.min] {
                expectListsStatus(LK_ERR_OPTION, ListsFixture(c) { $0.threads = threads }, mentions: ["threads"],
                                  "\(c.name) threads \(threads)")
            }
            for alpha in [Double.nan, -1, -1e-300, .infinity, -.infinity] {
                expectListsStatus(LK_ERR_OPTION, ListsFixture(c) { $0.cost_scale = alpha }, mentions: ["cost_scale"],
                                  "\(c.name) cost_scale \(alpha)")
            }
            expectListsStatus(LK_OK, ListsFixture(c) { $0.cost_scale = 0 }, "\(c.name) cost_scale 0")
            expectListsStatus(LK_OK, ListsFixture(c) { $0.threads = 3 }, "\(c.name) threads 3")
        }
        for kappa in [0, -1, Double.nan, .infinity] {
            expectListsStatus(LK_ERR_OPTION, ListsFixture(LK_LOSS_SQUARED) { $0.square_k = kappa },
                              mentions: ["square_k"], "square_k \(kappa)")
        }
        for m in [Double.nan, .infinity] {
            expectListsStatus(LK_ERR_OPTION, ListsFixture(LK_LOSS_SQUARED) { $0.square_m = m }, mentions: ["square_m"],
                              "square_m \(m)")
        }
        for value in [-1, Double.nan, .infinity] {
            expectListsStatus(LK_ERR_OPTION,
                              ListsFixture(LK_LOSS_HOPE_FEAR) { $0.hope = LK_TERM_MAX; $0.hope_scale = value },
                              mentions: ["hope_scale"], "hope_scale \(value)")
            expectListsStatus(LK_ERR_OPTION, ListsFixture(LK_LOSS_HOPE_FEAR) { $0.fear_scale = value },
                              mentions: ["fear_scale"], "fear_scale \(value)")
        }
        // cost_scale times a term scale that overflows.
        expectListsStatus(LK_ERR_OPTION,
                          ListsFixture(LK_LOSS_HOPE_FEAR) { $0.cost_scale = 1e200; $0.fear_scale = 1e200 },
                          mentions: ["cost_scale"])
    }

    @Test("label smoothing on lists is LK_ERR_UNSUPPORTED, also when n = 0 and before pointers")
    func labelSmoothingUnsupported() {
        for epsilon in [0.25, 1e-300, 0.999999] {
            expectListsStatus(LK_ERR_UNSUPPORTED, ListsFixture(LK_LOSS_LOG) { $0.label_smoothing = epsilon },
                              mentions: ["label_smoothing"], "label_smoothing \(epsilon)")
        }
        expectListsStatus(LK_ERR_UNSUPPORTED, ListsFixture(LK_LOSS_LOG) { $0.label_smoothing = 0.25 }.with {
            $0.n = 0; $0.offsets = nil; $0.scores = nil; $0.gold = nil; $0.cost = nil; $0.weight = nil
        }, mentions: ["label_smoothing"], "n = 0")
        expectListsStatus(LK_ERR_UNSUPPORTED, ListsFixture(LK_LOSS_LOG) { $0.label_smoothing = 0.25 }.with {
            $0.offsets = nil; $0.n = -1; $0.gold![0] = 99
        }, mentions: ["label_smoothing"], "with a NULL offsets, n < 0 and a bad gold too")
        // An epsilon outside [0, 1) is both an invalid option and unsupported: the contract does
        // not rank LK_ERR_OPTION against LK_ERR_UNSUPPORTED (one phase), so either is accepted.
        for epsilon in [1.5, -0.1, Double.nan] {
            let f = ListsFixture(LK_LOSS_LOG) { $0.label_smoothing = epsilon }
            let out: ListsOutput<Double> = callLists(f.opt, n: f.n, offsets: f.offsets, scores: f.scores, gold: f.gold,
                                                     cost: f.cost, weight: f.weight, lossCount: 4, gradCount: 10)
            #expect(out.status == LK_ERR_OPTION || out.status == LK_ERR_UNSUPPORTED,
                    "label_smoothing \(epsilon): \(out.status)")
            #expect(out.untouched && out.message.contains("label_smoothing"),
                    "label_smoothing \(epsilon): \(out.message)")
        }
        // label_smoothing is LOG's option only: any value is irrelevant to the other losses.
        for c in listCases where c.setup.loss != LK_LOSS_LOG {
            for epsilon in [0.25, 5, -1, Double.nan] {
                expectListsStatus(LK_OK, ListsFixture(c) { $0.label_smoothing = epsilon },
                                  "\(c.name) label_smoothing \(epsilon)")
            }
        }
    }

    @Test("options of other losses, cost_layout, ignore_label and reserved fields are not read")
    func optionsNotRead() {
        for c in listCases {
            if c.setup.loss != LK_LOSS_SQUARED {
                expectListsStatus(LK_OK, ListsFixture(c) { $0.square_k = -1; $0.square_m = .nan },
                                  "\(c.name): square_k, square_m")
            }
            if c.setup.loss != LK_LOSS_HOPE_FEAR {
                expectListsStatus(LK_OK, ListsFixture(c) {
                    $0.hope = 99; $0.fear = 99; $0.hope_scale = .nan; $0.fear_scale = -1
                }, "\(c.name): hope, fear and their scales")
            }
            // cost_layout is a dense-row option: lists have one layout (per candidate).
            expectListsStatus(LK_OK, ListsFixture(c) { $0.cost_layout = 99 }, "\(c.name): cost_layout = 99")
            expectListsStatus(LK_OK, ListsFixture(c) {
                $0.margin = -5; $0.lambda = .nan; $0.angular_scale = -1; $0.angular_margin = .nan
            }, "\(c.name): reserved fields")
        }
        // ignore_label is a dense-row notion: a gold equal to it is still a gold. With
        // ignore_label = -1 list 3 (gold -1, the oracle) still counts; with ignore_label = 1
        // list 0 (gold 1) still counts; -100 is an invalid gold, not an ignored one.
        let base = ListsFixture(LK_LOSS_SOFTMAX_MARGIN)
        let plain: ListsOutput<Double> = callLists(base.opt, n: 4, offsets: base.offsets, scores: base.scores,
                                                   gold: base.gold, cost: base.cost, weight: base.weight,
                                                   lossCount: 4, gradCount: 10)
        #expect(plain.status == LK_OK && plain.loss[0] > 0 && plain.loss[3] > 0)
        for ignore: Int32 in [-1, 1] {
            let f = ListsFixture(LK_LOSS_SOFTMAX_MARGIN) { $0.ignore_label = ignore }
            let out: ListsOutput<Double> = callLists(f.opt, n: 4, offsets: f.offsets, scores: f.scores, gold: f.gold,
                                                     cost: f.cost, weight: f.weight, lossCount: 4, gradCount: 10)
            #expect(out.status == LK_OK && sameValues(out.loss, plain.loss) && sameValues(out.grad, plain.grad),
                    "ignore_label = \(ignore) changed the result: \(out.loss) vs \(plain.loss)")
        }
        expectListsStatus(LK_ERR_LABEL, base.with { $0.gold![1] = -100 }, mentions: ["gold[1]"], "gold = -100")
    }

    // MARK: Pointers

    @Test("NULL offsets, scores or gold with n != 0 is LK_ERR_NULL; all NULL with n = 0 is fine")
    func nullInputs() {
        for c in listCases {
            for n: Int64 in [4, -1] {
                expectListsStatus(LK_ERR_NULL, ListsFixture(c).with { $0.offsets = nil; $0.n = n },
                                  mentions: ["offsets"], "\(c.name) n = \(n)")
                expectListsStatus(LK_ERR_NULL, ListsFixture(c).with { $0.scores = nil; $0.n = n }, mentions: ["scores"],
                                  "\(c.name) n = \(n)")
                expectListsStatus(LK_ERR_NULL, ListsFixture(c).with { $0.gold = nil; $0.n = n }, mentions: ["gold"],
                                  "\(c.name) n = \(n)")
            }
            for reduction in allReductions {
                expectListsStatus(LK_OK, ListsFixture(c) { $0.reduction = reduction }.with {
                    $0.n = 0; $0.offsets = nil; $0.scores = nil; $0.gold = nil; $0.cost = nil; $0.weight = nil
                }, "\(c.name) \(reductionName(reduction)) n = 0 with NULL pointers")
            }
            // NULL cost with no gold of -1: 0/1 costs against the gold.
            expectListsStatus(LK_OK, ListsFixture(c).with { $0.cost = nil; $0.gold![3] = 1 }, "\(c.name) NULL cost")
        }
    }

    @Test("n = 0: SUM and MEAN write 0, NONE writes nothing, the gradient is untouched, nothing is read")
    func emptyBatchWritesZero() {
        for reduction in allReductions {
            let o = Setup(loss: LK_LOSS_HINGE, reduction: reduction).options
            // offsets[0] = 5 and NaN-filled inputs: with n = 0 none of it may be read.
            let d: ListsOutput<Double> = callLists(o, n: 0, offsets: [5], scores: [.infinity], gold: [77], cost: [.nan],
                                                   weight: [.nan], lossCount: 1, gradCount: 1)
            let f: ListsOutput<Float> = callLists(o, n: 0, offsets: nil, scores: nil, gold: nil,
                                                  lossCount: 1, gradCount: 1)
            for (width, status, loss, grad, message, guards) in [
                ("f64", d.status, d.loss[0], d.grad[0], d.message, d.guardsIntact),
                ("f32", f.status, Double(f.loss[0]), Double(f.grad[0]), f.message, f.guardsIntact),
            ] {
                let context = "\(reductionName(reduction)) [\(width)]"
                #expect(status == LK_OK, "\(context): \(message)")
                #expect(loss == (reduction == LK_REDUCE_NONE ? poisonValue : 0), "\(context): loss \(loss)")
                #expect(grad == poisonValue && guards, "\(context): the gradient was written")
            }
        }
    }

    // MARK: Sizes

    @Test("n < 0, offsets[0] != 0, a decreasing offset, an absurd offsets[n] are LK_ERR_SIZE")
    func sizes() {
        expectListsStatus(LK_ERR_SIZE, ListsFixture().with { $0.n = -1 }, mentions: ["n"], "n = -1")
        expectListsStatus(LK_ERR_SIZE, ListsFixture().with { $0.n = Int64.min }, mentions: ["n"], "n = Int64.min")
        // n beyond any addressable offsets array: rejected before offsets[1...] is read.
        for n: Int64 in [Int64.max, 1 << 62, 1 << 60] {
            expectListsStatus(LK_ERR_SIZE, ListsFixture().with { $0.n = n }, mentions: ["n"], "n = \(n)")
        }
        for first: Int64 in [1, -1, 3, Int64.min] {
            expectListsStatus(LK_ERR_SIZE, ListsFixture().with { $0.offsets![0] = first }, mentions: ["offsets[0]"],
                              "offsets[0] = \(first)")
        }
        // offsets[2] = 2 < offsets[1] = 3, and offsets[4] = 7 < offsets[3] = 8: both named.
        expectListsStatus(LK_ERR_SIZE, ListsFixture().with { $0.offsets![2] = 2 },
                          mentions: ["offsets[2]", "offsets[1]"])
        expectListsStatus(LK_ERR_SIZE, ListsFixture().with { $0.offsets![4] = 7 },
                          mentions: ["offsets[4]", "offsets[3]"])
        expectListsStatus(LK_ERR_SIZE, ListsFixture().with { $0.offsets![1] = -2 },
                          mentions: ["offsets[1]", "offsets[0]"])
        // A huge offset followed by a smaller one: decreasing, and the first decrease is named.
        expectListsStatus(LK_ERR_SIZE, ListsFixture().with { $0.offsets![2] = Int64.max },
                          mentions: ["offsets[3]", "offsets[2]"])
        // offsets[n] beyond the address space (in bytes, for either width), found before anything
        // else is read: the gold is invalid and the scores hold +inf, and the buffers are only 10
        // long, so a missed size check shows as another status (or a crash).
        for last: Int64 in [Int64.max, Int64.max - 1, 1 << 62, 1 << 61] {
            expectListsStatus(LK_ERR_SIZE, ListsFixture().with {
                $0.offsets![4] = last
                $0.gold![3] = 5
                $0.scores![0] = .infinity
            }, mentions: ["offsets"], "offsets[4] = \(last)")
            expectListsStatus(LK_ERR_SIZE, ListsFixture().with {
                $0.offsets![2] = last; $0.offsets![3] = last; $0.offsets![4] = last
            }, mentions: ["offsets"], "offsets[2...4] = \(last)")
        }
        // n = 1 and a huge single list.
        expectListsStatus(LK_ERR_SIZE, ListsFixture().with {
            $0.n = 1; $0.offsets = [0, Int64.max]; $0.gold = [0]; $0.weight = [1]
        }, mentions: ["offsets"], "one list of Int64.max candidates")
    }

    // MARK: Labels

    @Test("a gold outside its list that is not -1 is LK_ERR_LABEL, naming gold[i]")
    func goldOutOfRange() {
        for c in listCases {
            // List 2 has 4 candidates.
            for g: Int32 in [4, 5, 99, Int32.max, -2, -100, Int32.min] {
                expectListsStatus(LK_ERR_LABEL, ListsFixture(c).with { $0.gold![2] = g }, mentions: ["gold[2]"],
                                  "\(c.name) gold[2] = \(g)")
            }
            // List 1 has one candidate.
            expectListsStatus(LK_ERR_LABEL, ListsFixture(c).with { $0.gold![1] = 1 }, mentions: ["gold[1]"],
                              "\(c.name) gold[1] = 1 in a list of 1")
            // Valid: the last candidate, -1, and anything on a zero-weight list.
            expectListsStatus(LK_OK, ListsFixture(c).with { $0.gold![2] = 3 }, "\(c.name) gold[2] = 3")
            expectListsStatus(LK_OK, ListsFixture(c).with { $0.gold![2] = -1 }, "\(c.name) gold[2] = -1")
            for g: Int32 in [4, -2, Int32.min] {
                expectListsStatus(LK_OK, ListsFixture(c).with { $0.gold![2] = g; $0.weight![2] = 0 },
                                  "\(c.name) zero weight, gold[2] = \(g)")
            }
        }
        // The first bad label (lowest index) is reported.
        expectListsStatus(LK_ERR_LABEL, ListsFixture().with { $0.gold![1] = 7; $0.gold![3] = -5 },
                          mentions: ["gold[1]"], excludes: ["gold[3]"], "two bad labels")
    }

    @Test("gold -1 with a NULL cost is LK_ERR_NULL naming the gold; fine on a zero-weight list")
    func oracleWithoutCosts() {
        for c in listCases {
            expectListsStatus(LK_ERR_NULL, ListsFixture(c).with { $0.cost = nil }, mentions: ["cost", "gold[3]"],
                              "\(c.name) gold[3] = -1, NULL cost")
            expectListsStatus(LK_OK, ListsFixture(c).with { $0.cost = nil; $0.weight![3] = 0 },
                              "\(c.name) gold[3] = -1, NULL cost, weight 0")
        }
        // NULL weight = all ones: not skipped.
        expectListsStatus(LK_ERR_NULL, ListsFixture().with { $0.cost = nil; $0.weight = nil },
                          mentions: ["cost", "gold[3]"])
    }

    // MARK: Empty lists

    @Test("an empty list of non-zero weight is LK_ERR_DOMAIN; of weight 0 it is skipped whatever its gold")
    func emptyLists() {
        for c in listCases {
            for i in 0..<4 {
                // Gold -1 (with costs) passes the label phase; the empty list fails among values.
                expectListsStatus(LK_ERR_DOMAIN, ListsFixture(c).emptying(i).with { $0.gold![i] = -1 },
                                  mentionsAny: ["example \(i)", "list \(i)"], "\(c.name) list \(i) empty, gold -1")
                // Any other gold is outside [0, 0): a label error, which comes first.
                expectListsStatus(LK_ERR_LABEL, ListsFixture(c).emptying(i).with { $0.gold![i] = 0 },
                                  mentions: ["gold[\(i)]"], "\(c.name) list \(i) empty, gold 0")
                for g: Int32 in [0, -1, 7, -7, Int32.min] {
                    expectListsStatus(LK_OK, ListsFixture(c).emptying(i).with { $0.gold![i] = g; $0.weight![i] = 0 },
                                      "\(c.name) list \(i) empty, weight 0, gold \(g)")
                }
                // Weight 0, gold -1 and no costs at all.
                expectListsStatus(LK_OK, ListsFixture(c).emptying(i).with {
                    $0.gold = [1, 0, 2, 1]; $0.gold![i] = -1; $0.weight![i] = 0; $0.cost = nil
                }, "\(c.name) list \(i) empty, weight 0, gold -1, NULL cost")
            }
            // Every list empty and of weight 0: offsets[n] = 0, a valid (unread) scores pointer.
            expectListsStatus(LK_OK, ListsFixture(c).with {
                $0.offsets = [0, 0, 0, 0, 0]; $0.scores = []; $0.cost = []; $0.weight = [0, 0, 0, 0]
            }, "\(c.name) all lists empty, weight 0")
        }
    }

    // MARK: Values

    @Test("+inf score, an all-masked list, a masked gold under a gold-score loss are LK_ERR_DOMAIN")
    func scoreDomain() {
        for c in listCases {
            expectListsStatus(LK_ERR_DOMAIN, ListsFixture(c).with { $0.scores![7] = .infinity },
                              mentions: ["scores[7]"], "\(c.name) +inf score")
            expectListsStatus(LK_ERR_DOMAIN, ListsFixture(c).with {
                $0.scores![4..<8] = [-.infinity, -.infinity, -.infinity, -.infinity]
            }, mentionsAny: ["example 2", "list 2"], "\(c.name) all-masked list 2")
            expectListsStatus(LK_ERR_DOMAIN, ListsFixture(c).with { $0.scores![3] = -.infinity },
                              mentionsAny: ["example 1", "list 1"], "\(c.name) all-masked list 1 (one candidate)")
            // An all-masked list with gold -1: no oracle either.
            expectListsStatus(LK_ERR_DOMAIN,
                              ListsFixture(c).with { $0.scores![8] = -.infinity; $0.scores![9] = -.infinity },
                              mentionsAny: ["example 3", "list 3"], "\(c.name) all-masked list 3 (gold -1)")
            // List 2's gold is candidate 2, flat index 6.
            let maskedGold = ListsFixture(c).with { $0.scores![6] = -.infinity }
            if usesGold(c) {
                expectListsStatus(LK_ERR_DOMAIN, maskedGold, mentions: ["scores[6]"], "\(c.name) masked gold")
            } else {
                expectListsStatus(LK_OK, maskedGold, "\(c.name) masked gold is fine: the loss does not use s[gold]")
            }
            // With gold -1 the oracle stands in, and it is never masked — even when the masked
            // candidate has the lowest cost (list 2: candidate 2 costs 0, the oracle becomes 1).
            expectListsStatus(LK_OK, maskedGold.with { $0.gold![2] = -1 },
                              "\(c.name) masked lowest-cost candidate, gold -1")
            // NaN is not an error: it propagates.
            expectListsStatus(LK_OK, ListsFixture(c).with { $0.scores![5] = .nan }, "\(c.name) NaN score")
            // A zero-weight list is not read.
            expectListsStatus(LK_OK, ListsFixture(c).with {
                $0.scores![4..<8] = [.infinity, .nan, -.infinity, .infinity]; $0.weight![2] = 0
            }, "\(c.name) +inf, NaN on a zero-weight list")
        }
    }

    @Test("a non-finite cost that is read is LK_ERR_DOMAIN; unread costs (masked, zero weight) may be anything")
    func costDomain() {
        for c in listCases {
            for bad in [Double.nan, .infinity, -.infinity] {
                // List 2's candidate 1: flat index 5, score -0.5 (unmasked), gold 2.
                let f = ListsFixture(c).with { $0.cost![5] = bad }
                if c.model.readsCosts {
                    expectListsStatus(LK_ERR_DOMAIN, f, mentions: ["cost[5]"], "\(c.name) cost \(bad)")
                } else {
                    expectListsStatus(LK_OK, f, "\(c.name) reads no costs (gold given)")
                }
                // The oracle reads costs, whatever the loss.
                expectListsStatus(LK_ERR_DOMAIN, f.with { $0.gold![2] = -1 }, mentions: ["cost[5]"],
                                  "\(c.name) cost \(bad), gold -1")
                // Not read: on a masked candidate (also for the oracle), on a zero-weight list.
                expectListsStatus(LK_OK, f.with { $0.scores![5] = -.infinity },
                                  "\(c.name) cost \(bad) on a masked candidate")
                expectListsStatus(LK_OK, f.with { $0.scores![5] = -.infinity; $0.gold![2] = -1 },
                                  "\(c.name) cost \(bad) on a masked candidate, gold -1")
                expectListsStatus(LK_OK, f.with { $0.weight![2] = 0; $0.gold![2] = -1 },
                                  "\(c.name) cost \(bad), weight 0")
            }
        }
        // A finite cost that overflows once scaled (SOFT_RAMP reads cost_scale * cost).
        expectListsStatus(LK_ERR_DOMAIN,
                          ListsFixture(LK_LOSS_SOFT_RAMP) { $0.cost_scale = 1e30 }.with { $0.cost![5] = 1e280 },
                          mentions: ["cost[5]"], "scaled cost overflows")
    }

    @Test("a negative, NaN or infinite weight is LK_ERR_DOMAIN, naming weight[i]")
    func weightDomain() {
        for c in listCases {
            for w in [-1, -1e-30, Double.nan, .infinity, -.infinity] {
                expectListsStatus(LK_ERR_DOMAIN, ListsFixture(c).with { $0.weight![2] = w }, mentions: ["weight[2]"],
                                  "\(c.name) weight \(w)")
                // Also on an empty list: the weight is read first.
                expectListsStatus(LK_ERR_DOMAIN,
                                  ListsFixture(c).emptying(2).with { $0.weight![2] = w; $0.gold![2] = -1 },
                                  mentions: ["weight[2]"], "\(c.name) weight \(w) on an empty list")
            }
            expectListsStatus(LK_OK, ListsFixture(c).with { $0.weight![2] = 0 }, "\(c.name) weight 0")
            expectListsStatus(LK_OK, ListsFixture(c).with { $0.weight![2] = -0.0 }, "\(c.name) weight -0")
        }
        // A summed weight that overflows under MEAN (float64 only: in float32 the weight itself
        // rounds to +inf, an error of its own).
        let f = ListsFixture(LK_LOSS_LOG) { $0.reduction = LK_REDUCE_MEAN }.with {
            $0.weight = [.greatestFiniteMagnitude, .greatestFiniteMagnitude, 1, 1]
        }
        let out: ListsOutput<Double> = callLists(f.opt, n: 4, offsets: f.offsets, scores: f.scores, gold: f.gold,
                                                 cost: f.cost, weight: f.weight, lossCount: 4, gradCount: 10)
        #expect(out.status == LK_ERR_DOMAIN && out.untouched, "\(out.message)")
        #expect(out.message.contains("weight"), "\(out.message)")
    }

    // MARK: Order of checks

    @Test("order: NULL opt, options, pointers, sizes, labels, values; lowest index first")
    func orderOfChecks() {
        // An option (or an unsupported loss) and a NULL pointer: the option.
        expectListsStatus(LK_ERR_OPTION, ListsFixture { $0.reduction = 9 }.with { $0.scores = nil },
                          mentions: ["reduction"])
        expectListsStatus(LK_ERR_OPTION, ListsFixture { $0.cost_scale = -1 }.with { $0.offsets = nil; $0.n = -1 },
                          mentions: ["cost_scale"])
        expectListsStatus(LK_ERR_UNSUPPORTED,
                          ListsFixture(LK_LOSS_LOG) { $0.label_smoothing = 0.1 }.with { $0.gold = nil },
                          mentions: ["label_smoothing"])
        // An option and a bad size or label: the option.
        expectListsStatus(LK_ERR_OPTION, ListsFixture { $0.threads = -1 }.with { $0.offsets![0] = 1 },
                          mentions: ["threads"])
        expectListsStatus(LK_ERR_OPTION, ListsFixture { $0.loss = 99 }.with { $0.gold![0] = 99 }, mentions: ["loss"])
        // A NULL pointer and a bad size: the pointer.
        expectListsStatus(LK_ERR_NULL, ListsFixture().with { $0.offsets = nil; $0.n = -1 }, mentions: ["offsets"])
        expectListsStatus(LK_ERR_NULL, ListsFixture().with { $0.scores = nil; $0.offsets![0] = 1 },
                          mentions: ["scores"])
        expectListsStatus(LK_ERR_NULL, ListsFixture().with { $0.gold = nil; $0.offsets![4] = Int64.max },
                          mentions: ["gold"])
        expectListsStatus(LK_ERR_NULL, ListsFixture().with { $0.gold = nil; $0.offsets![2] = 1 }, mentions: ["gold"])
        // A NULL pointer and a bad label or value: the pointer.
        expectListsStatus(LK_ERR_NULL, ListsFixture().with { $0.scores = nil; $0.gold![0] = 99 }, mentions: ["scores"])
        // A bad size and a bad label (or a NULL cost for a gold of -1, found in the label phase):
        // the size.
        expectListsStatus(LK_ERR_SIZE, ListsFixture().with { $0.offsets![2] = 2; $0.gold![0] = 99 },
                          mentions: ["offsets[2]"])
        expectListsStatus(LK_ERR_SIZE, ListsFixture().with { $0.offsets![0] = 1; $0.cost = nil },
                          mentions: ["offsets[0]"])
        expectListsStatus(LK_ERR_SIZE, ListsFixture().with { $0.offsets![4] = Int64.max; $0.gold![3] = 9 },
                          mentions: ["offsets"])
        // A bad label and a bad value (even in an earlier list): the label.
        expectListsStatus(LK_ERR_LABEL, ListsFixture().with { $0.scores![0] = .infinity; $0.gold![3] = 5 },
                          mentions: ["gold[3]"])
        expectListsStatus(LK_ERR_LABEL, ListsFixture().with { $0.weight![0] = .nan; $0.gold![2] = -2 },
                          mentions: ["gold[2]"])
        expectListsStatus(LK_ERR_LABEL, ListsFixture().with { $0.cost![0] = .nan; $0.gold![1] = 5 },
                          mentions: ["gold[1]"])
        expectListsStatus(LK_ERR_LABEL, ListsFixture().emptying(0).with { $0.gold![0] = -1; $0.gold![3] = 9 },
                          mentions: ["gold[3]"], "an empty list 0 (a value error) and a bad label in list 3")
        expectListsStatus(LK_ERR_LABEL, ListsFixture(LK_LOSS_LOG).with { $0.scores![1] = -.infinity; $0.gold![3] = 5 },
                          mentions: ["gold[3]"], "masked gold (list 0) and a bad label (list 3)")
        // Within the label phase, the lowest index: a NULL cost for gold[1] = -1 before a bad
        // gold[3], and a bad gold[1] before gold[3] = -1 without costs.
        expectListsStatus(LK_ERR_NULL, ListsFixture().with { $0.cost = nil; $0.gold![1] = -1; $0.gold![3] = 9 },
                          mentions: ["gold[1]"], excludes: ["gold[3]"])
        expectListsStatus(LK_ERR_LABEL, ListsFixture().with { $0.cost = nil; $0.gold![1] = 9 },
                          mentions: ["gold[1]"], excludes: ["gold[3]"])
        // Values: the lowest list is reported.
        expectListsStatus(LK_ERR_DOMAIN, ListsFixture().with { $0.weight![1] = .nan; $0.scores![7] = .infinity },
                          mentions: ["weight[1]"], excludes: ["scores"])
        expectListsStatus(LK_ERR_DOMAIN, ListsFixture().with { $0.scores![1] = .infinity; $0.weight![3] = -1 },
                          mentions: ["scores[1]"], excludes: ["weight"])
        expectListsStatus(LK_ERR_DOMAIN, ListsFixture().with { $0.scores![4] = .infinity; $0.cost![1] = .nan },
                          mentions: ["cost[1]"], excludes: ["scores"])
        expectListsStatus(LK_ERR_DOMAIN, ListsFixture().with { $0.cost![5] = .nan; $0.scores![9] = .infinity },
                          mentions: ["cost[5]"], excludes: ["scores"])
        expectListsStatus(LK_ERR_DOMAIN,
                          ListsFixture().emptying(1).with { $0.gold![1] = -1; $0.scores![6] = .infinity },
                          mentionsAny: ["example 1", "list 1"], excludes: ["scores"])
        expectListsStatus(LK_ERR_DOMAIN,
                          ListsFixture().emptying(2).with { $0.gold![2] = -1; $0.scores![2] = .infinity },
                          mentions: ["scores[2]"], "+inf in list 0 before the empty list 2")
    }

    /// Validation split across threads (> 2^18 candidates, so that two threads really run) must
    /// report what a sequential scan would: the lowest failing list. PERCEPTRON without costs
    /// keeps the (debug-build) scan short.
    @Test("validation split across threads reports the lowest failing list, outputs untouched")
    func firstErrorAcrossChunks() throws {
        var rng = SplitMix64("lists errors across chunks")
        let b = drawLists(ListRecipe(lengths: 1...200, n: 2900, maskProbability: 0.05, withCosts: false,
                                     largeMagnitudes: false), &rng)
        try #require(b.total > 1 << 18, "\(b.total) candidates")
        let late = b.n - 3, early = b.n / 3
        let lateScore = b.range(late).lowerBound
        // +inf in a late list and a NaN weight in an earlier list of another chunk: the weight.
        var bad = b
        bad.scores[lateScore] = .infinity
        bad.weight![early] = .nan
        for threads: Int32 in [1, 2] {
            let out = runLists(listSetup(.perceptron, LK_REDUCE_NONE, threads: threads), bad)
            #expect(out.status == LK_ERR_DOMAIN && out.untouched, "threads=\(threads)")
            #expect(out.message.contains("weight[\(early)]"), "threads=\(threads): \(out.message)")
        }
        var lateOnly = b
        lateOnly.scores[lateScore] = .infinity
        let out = runLists(listSetup(.perceptron, LK_REDUCE_SUM, threads: 2), lateOnly)
        #expect(out.status == LK_ERR_DOMAIN && out.untouched)
        #expect(out.message.contains("scores[\(lateScore)]"), "\(out.message)")
    }
}
