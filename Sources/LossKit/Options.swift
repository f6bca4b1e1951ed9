import CLossKit

/// The structures of DESIGN.md §4; a loss may be defined on some and not others.
enum StructureKind {
    case dense
    case lists
    case chains

    /// Whether candidates can be summed over one by one (the square losses, label smoothing).
    var enumeratesCandidates: Bool {
        switch self {
        case .dense, .lists: return true
        case .chains: return false
        }
    }

    /// Label smoothing targets every class: a dense-row notion (DESIGN.md §2).
    var smoothsLabels: Bool { self == .dense }

    var name: String {
        switch self {
        case .dense: return "dense rows"
        case .lists: return "candidate lists"
        case .chains: return "linear chains"
        }
    }
}

/// How a batch of per-example losses is reduced (`LK_REDUCE_*`).
enum Reduction {
    case none, sum, mean
}

/// Where a dense row's costs come from (`LK_COST_*`).
enum CostLayout {
    case zeroOne, perExample, classMatrix
}

/// `lk_options` after validation: everything the computing code needs, nothing raw.
struct Options {
    var recipe: Recipe
    var reduction: Reduction
    var ignoreLabel: Int32
    var costLayout: CostLayout
    var threads: Int
    var costScale: Double

    /// The first published layout of `lk_options` (112 bytes on x86-64); a smaller `size` is
    /// rejected.
    static let firstLayoutSize = 112

    /// The options of a decoding call (Viterbi, marginals): `opt` may be NULL (defaults); else its
    /// size is checked and only `threads` is read.
    static func decoding(_ raw: UnsafePointer<lk_options>?) throws(Failure) -> Int {
        guard let raw else { return 0 }
        let size = Int(UnsafeRawPointer(raw).load(as: UInt32.self))
        guard size >= firstLayoutSize else {
            throw .option("opt->size = \(size) is smaller than the first published layout (\(firstLayoutSize) bytes); initialise with lk_options_init")
        }
        let threads = raw.pointee.threads
        guard threads >= 0 else { throw .option("opt->threads = \(threads) is negative") }
        return Int(threads)
    }

    /// Validates `raw` for `structure` in the order DESIGN.md §2 gives: NULL, then options.
    /// Only the options the chosen loss uses are validated (and read).
    static func parse(_ raw: UnsafePointer<lk_options>?, for structure: StructureKind)
        throws(Failure) -> Options
    {
        guard let raw else { throw .null("opt is NULL") }
        // Only `size` may be read before it is known how large the caller's struct is.
        let size = Int(UnsafeRawPointer(raw).load(as: UInt32.self))
        guard size >= firstLayoutSize else {
            throw .option("opt->size = \(size) is smaller than the first published layout (\(firstLayoutSize) bytes); initialise with lk_options_init")
        }
        // Read the caller's bytes, at most our layout's; fields a caller's (older, smaller)
        // layout lacks keep their defaults, fields a newer layout appends are not read.
        let loss = UnsafeRawPointer(raw).load(fromByteOffset: 4, as: Int32.self)
        var o = defaults(loss: loss) ?? defaults(loss: LK_LOSS_LOG)!
        withUnsafeMutableBytes(of: &o) { mine in
            mine.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: min(size, mine.count)))
        }

        let reduction: Reduction
        switch o.reduction {
        case LK_REDUCE_NONE: reduction = .none
        case LK_REDUCE_SUM: reduction = .sum
        case LK_REDUCE_MEAN: reduction = .mean
        default: throw .option("opt->reduction = \(o.reduction) is not an LK_REDUCE_* value")
        }
        guard o.threads >= 0 else { throw .option("opt->threads = \(o.threads) is negative") }
        let costScale = try nonNegative(o.cost_scale, "cost_scale")

        let recipe: Recipe
        switch o.loss {
        case LK_LOSS_LOG:
            let epsilon = o.label_smoothing
            guard epsilon >= 0, epsilon < 1 else {
                throw .option("opt->label_smoothing = \(epsilon) is outside [0, 1)")
            }
            recipe = epsilon == 0 ? .fearMinusHope(fear: .logSumExp(0), hope: .gold) : .smoothedLog(epsilon: epsilon)
        case LK_LOSS_PERCEPTRON: recipe = .fearMinusHope(fear: .max(0), hope: .gold)
        case LK_LOSS_HINGE: recipe = .fearMinusHope(fear: .max(1), hope: .gold)
        case LK_LOSS_SOFTMAX_MARGIN: recipe = .fearMinusHope(fear: .logSumExp(1), hope: .gold)
        case LK_LOSS_RISK: recipe = .risk
        case LK_LOSS_RAMP: recipe = .fearMinusHope(fear: .max(1), hope: .max(-1))
        case LK_LOSS_SOFT_RAMP: recipe = .fearMinusHope(fear: .logSumExp(1), hope: .logSumExp(-1))
        case LK_LOSS_INFINITE_RAMP: recipe = .fearMinusHope(fear: .max(1), hope: .oracle)
        case LK_LOSS_SQUARED:
            let kappa = o.square_k
            guard kappa > 0, kappa.isFinite else {
                throw .option("opt->square_k = \(kappa) must be finite and > 0")
            }
            guard o.square_m.isFinite else { throw .option("opt->square_m = \(o.square_m) is not finite") }
            recipe = .squared(kappa: kappa, target: o.square_m)
        case LK_LOSS_SQUENTROPY: recipe = .squentropy
        case LK_LOSS_HOPE_FEAR:
            let f = try nonNegative(o.fear_scale, "fear_scale")
            let h = try nonNegative(o.hope_scale, "hope_scale")
            let fear: Term
            switch o.fear {
            case LK_TERM_MAX: fear = .max(f)
            case LK_TERM_LSE: fear = .logSumExp(f)
            default: throw .option("opt->fear = \(o.fear) is not LK_TERM_MAX or LK_TERM_LSE")
            }
            let hope: Term
            switch o.hope {
            case LK_TERM_GOLD: hope = .gold
            case LK_TERM_ORACLE: hope = .oracle
            case LK_TERM_MAX: hope = .max(-h)
            case LK_TERM_LSE: hope = .logSumExp(-h)
            default: throw .option("opt->hope = \(o.hope) is not an LK_TERM_* value")
            }
            recipe = .fearMinusHope(fear: fear, hope: hope)
        default:
            throw .option("opt->loss = \(o.loss) is not an LK_LOSS_* value")
        }
        if recipe.needsEnumeration, !structure.enumeratesCandidates {
            throw .unsupported("opt->loss = \(o.loss) needs candidates that can be enumerated one by one, which \(structure.name) do not have")
        }
        if case .smoothedLog = recipe, !structure.smoothsLabels {
            throw .unsupported("opt->label_smoothing = \(o.label_smoothing): label smoothing is defined on dense rows only, not on \(structure.name)")
        }
        // c = cost_scale * (term scale) * cost must stay finite for any cost up to 1 (0/1 costs).
        guard (costScale * recipe.costFactor).isFinite else {
            throw .option("opt->cost_scale = \(costScale) times the term scale \(recipe.costFactor) overflows")
        }

        var costLayout = CostLayout.zeroOne
        if recipe.readsCosts, structure == .dense {
            switch o.cost_layout {
            case LK_COST_ZERO_ONE: costLayout = .zeroOne
            case LK_COST_PER_EXAMPLE: costLayout = .perExample
            case LK_COST_CLASS_MATRIX: costLayout = .classMatrix
            default: throw .option("opt->cost_layout = \(o.cost_layout) is not an LK_COST_* value")
            }
        }
        return Options(recipe: recipe, reduction: reduction, ignoreLabel: o.ignore_label,
                       costLayout: costLayout, threads: Int(o.threads), costScale: costScale)
    }

    private static func nonNegative(_ value: Double, _ name: String) throws(Failure) -> Double {
        guard value >= 0, value.isFinite else {
            throw .option("opt->\(name) = \(value) must be finite and >= 0")
        }
        return value
    }

    /// What `lk_options_init` writes: the size, the loss and every default.
    static func defaults(loss: Int32) -> lk_options? {
        guard (LK_LOSS_LOG...LK_LOSS_HOPE_FEAR).contains(loss) else { return nil }
        var o = lk_options()
        o.size = UInt32(MemoryLayout<lk_options>.size)
        o.loss = loss
        o.reduction = LK_REDUCE_MEAN
        o.ignore_label = -100
        o.cost_layout = LK_COST_ZERO_ONE
        o.threads = 0
        o.cost_scale = 1
        o.label_smoothing = 0
        o.square_k = 1
        o.square_m = 1
        o.hope = LK_TERM_GOLD
        o.fear = LK_TERM_LSE
        o.hope_scale = 0
        o.fear_scale = 1
        o.margin = 2
        o.lambda = 0
        o.angular_scale = 64
        o.angular_margin = 0.5
        return o
    }
}
