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
    /// Soft-capping and z-loss around the loss (dense rows only).
    var shaping = Shaping()

    /// What lk_lsoftmax reads (DESIGN.md §4.5).
    struct LSoftmax {
        var reduction: Reduction
        var ignoreLabel: Int32
        var threads: Int
        var margin: Int
        var lambda: Double
    }

    /// The largest L-Softmax margin m (cos(m theta) is a degree-m polynomial evaluated per row).
    static let largestMargin: Int32 = 1000

    /// The first published layout of `lk_options` (112 bytes on x86-64); a smaller `size` is
    /// rejected.
    static let firstLayoutSize = 112

    /// The options of a decoding call (Viterbi, marginals): `opt` may be NULL (defaults); else its
    /// size is checked and only `threads` is read.
    static func decodingThreads(_ raw: UnsafePointer<lk_options>?) throws(Failure) -> Int {
        guard let raw else { return 0 }
        _ = try checkedSize(raw)
        let threads = raw.pointee.threads
        guard threads >= 0 else { throw .option("opt->threads = \(threads) is negative") }
        return Int(threads)
    }

    /// The caller's `opt->size`, the one field read before it is known how large the caller's
    /// struct is; smaller than the first published layout is an error.
    private static func checkedSize(_ raw: UnsafePointer<lk_options>) throws(Failure) -> Int {
        let size = Int(UnsafeRawPointer(raw).load(as: UInt32.self))
        guard size >= firstLayoutSize else {
            throw .option("opt->size = \(size) is smaller than the first published layout (\(firstLayoutSize) bytes); "
                          + "initialise with lk_options_init")
        }
        return size
    }

    /// Validates `raw` for `structure` in the order DESIGN.md §2 gives: NULL, then options.
    /// Only the options the chosen loss uses are validated (and read). `T` is the type the
    /// cost-augmented scores are formed in (the input type; double for chains).
    static func parse<T: StorageFloat>(
        _ raw: UnsafePointer<lk_options>?, for structure: StructureKind, computingIn _: T.Type
    ) throws(Failure) -> Options {
        let o = try read(raw)
        let reduction = try Self.reduction(o)
        let costScale = try nonNegative(o.cost_scale, "cost_scale")

        let recipe = try Recipe.preset(o, for: structure)
        if recipe.needsEnumeration, !structure.enumeratesCandidates {
            throw .unsupported("opt->loss = \(o.loss) needs candidates that can be enumerated one by one, which "
                               + "\(structure.name) do not have")
        }
        let shaping = Shaping(zLoss: try nonNegative(o.z_loss, "z_loss"), softcap: try nonNegative(o.softcap, "softcap"))
        if shaping.isActive, structure != .dense {
            throw .unsupported("opt->\(shaping.zLoss != 0 ? "z_loss = \(shaping.zLoss)" : "softcap = \(shaping.softcap)") "
                               + "applies to dense rows only, not to \(structure.name)")
        }
        if case .smoothedLog = recipe, !structure.smoothsLabels {
            throw .unsupported("opt->label_smoothing = \(o.label_smoothing): label smoothing is defined on dense rows "
                               + "only, not on \(structure.name)")
        }
        // c = cost_scale * (term scale) * cost must stay finite for any cost up to 1 (0/1
        // costs), in T when the loss reads costs (they are scaled in T).
        let scaledCost = costScale * recipe.costFactor
        guard scaledCost.isFinite, !recipe.readsCosts || T(rounding: scaledCost).isFinite else {
            throw .option("opt->cost_scale = \(costScale) times the term scale \(recipe.costFactor) overflows "
                          + "\(T.self == Float.self ? "float" : "double")")
        }
        if case .angular(let angular) = recipe, !T(rounding: angular.largestLogit).isFinite {
            throw .option("opt->angular_scale = \(angular.scale) times 1 + angular_margin (\(angular.margin)) "
                          + "overflows \(T.self)")
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
                       costLayout: costLayout, threads: Int(o.threads), costScale: costScale, shaping: shaping)
    }

    /// Validates `raw` for lk_lsoftmax: NULL, size, reduction, threads, margin, lambda
    /// (`opt->loss` is not read).
    static func parseLSoftmax(_ raw: UnsafePointer<lk_options>?) throws(Failure) -> LSoftmax {
        let o = try read(raw)
        let reduction = try Self.reduction(o)
        guard o.margin >= 1, o.margin <= largestMargin else {
            throw .option("opt->margin = \(o.margin) is outside [1, \(largestMargin)]")
        }
        let lambda = try nonNegative(o.lambda, "lambda")
        for (name, value) in [("z_loss", o.z_loss), ("softcap", o.softcap)] {
            guard try nonNegative(value, name) == 0 else {
                throw .unsupported("opt->\(name) = \(value) applies to dense rows only, not to lk_lsoftmax")
            }
        }
        return LSoftmax(reduction: reduction, ignoreLabel: o.ignore_label, threads: Int(o.threads),
                        margin: Int(o.margin), lambda: lambda)
    }

    /// The caller's options over our defaults, after the NULL and size checks; threads >= 0.
    private static func read(_ raw: UnsafePointer<lk_options>?) throws(Failure) -> lk_options {
        guard let raw else { throw .null("opt is NULL") }
        let size = try checkedSize(raw)
        // Read the caller's bytes, at most our layout's; fields a caller's (older, smaller)
        // layout lacks keep their defaults, fields a newer layout appends are not read.
        let loss = UnsafeRawPointer(raw).load(fromByteOffset: 4, as: Int32.self)
        var o = defaults(loss: loss) ?? defaults(loss: LK_LOSS_LOG)!
        withUnsafeMutableBytes(of: &o) { mine in
            mine.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: min(size, mine.count)))
        }
        guard o.threads >= 0 else { throw .option("opt->threads = \(o.threads) is negative") }
        return o
    }

    private static func reduction(_ o: lk_options) throws(Failure) -> Reduction {
        switch o.reduction {
        case LK_REDUCE_NONE: return .none
        case LK_REDUCE_SUM: return .sum
        case LK_REDUCE_MEAN: return .mean
        default: throw .option("opt->reduction = \(o.reduction) is not an LK_REDUCE_* value")
        }
    }

    static func nonNegative(_ value: Double, _ name: String) throws(Failure) -> Double {
        guard value >= 0, value.isFinite else {
            throw .option("opt->\(name) = \(value) must be finite and >= 0")
        }
        return value
    }

    /// What `lk_options_init` writes: the size, the loss and every default.
    static func defaults(loss: Int32) -> lk_options? {
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
        o.angular_margin = loss == LK_LOSS_COSFACE ? 0.35 : 0.5
        o.z_loss = 0
        o.softcap = 0
        // A loss of the catalogue: its recipe builds from these defaults (on dense rows, where
        // every loss is defined).
        guard (try? Recipe.preset(o, for: .dense)) != nil else { return nil }
        return o
    }
}
