// The CPU level a run of this suite computes at. `make test-swift` compiles the suite once, for
// baseline x86-64, and runs it once per CPU level this machine has, with LOSSKIT_ISA capping the
// level and the CPU-level builds of `make lib` linked beside the test bundle, where the library's
// dispatcher looks for them. This test proves that each run reaches the level it is meant for: the
// C API's lk_cpu_level must name exactly that level. The CPU's own level is read independently of
// the library, from the flags the kernel reports in /proc/cpuinfo.
import CLossKit
import Glibc
import Testing

@Suite("CPU level")
struct CPULevelTests {
    static let levels = ["x86-64", "avx2", "avx512"]

    /// The level this run is for, set by make test-swift (LOSSKIT_TEST_LEVEL); nil in a plain
    /// `swift test`, where no CPU-level build lies beside the tests.
    static let runLevel: String? = getenv("LOSSKIT_TEST_LEVEL").map { String(cString: $0) }

    @Test("the entry points run at the level LOSSKIT_ISA asks for",
          .enabled(if: runLevel != nil, "needs LOSSKIT_TEST_LEVEL, as make test-swift sets it"))
    func dispatchReachesTheLevel() throws {
        let level = try #require(Self.runLevel)
        let wanted = try #require(Self.levels.firstIndex(of: level), "LOSSKIT_TEST_LEVEL=\(level)")
        let cap = getenv("LOSSKIT_ISA").map { String(cString: $0) }
        try #require(cap == level, "LOSSKIT_ISA=\(cap ?? "unset") in the run for \(level)")
        let cpu = try #require(Self.cpuLevelFromKernel())
        try #require(cpu >= wanted, "the run for \(level) on a CPU of level \(Self.levels[cpu])")
        let running = String(cString: try #require(lk_cpu_level()))
        #expect(running == level, "lk_cpu_level() in the run for \(level)")
    }

    /// 0 (x86-64), 1 (AVX2: the x86-64-v3 features the AVX2 build is compiled for) or 2 (AVX-512:
    /// also F, DQ, CD, BW, VL), from the first `flags` line of /proc/cpuinfo; the kernel leaves out
    /// the AVX features whose register state the OS does not save. nil if it cannot be read.
    static func cpuLevelFromKernel() -> Int? {
        guard let file = fopen("/proc/cpuinfo", "r") else { return nil }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            let text = String(cString: line)
            guard text.hasPrefix("flags") else { continue }
            let flags = Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
            let avx2 = ["avx", "avx2", "fma", "bmi1", "bmi2", "abm", "movbe", "popcnt", "f16c"]
            let avx512 = ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"]
            guard avx2.allSatisfy(flags.contains) else { return 0 }
            return avx512.allSatisfy(flags.contains) ? 2 : 1
        }
        return nil
    }
}
