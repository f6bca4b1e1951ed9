import CLossKit
#if canImport(Glibc)
import Glibc
#endif

/// Threads for the computing passes (DESIGN.md §3 "Determinism").
///
/// Work is cut into chunks whose boundaries depend only on the input, never on the thread
/// count; each chunk's partial sum is kept separately and the partials are added in chunk order,
/// so the outputs are bit-identical at any thread count. Threads are plain pthreads (no extra
/// dependency), started for one call and joined before it returns: nothing keeps running after
/// a call. Small inputs run on the calling thread alone.
enum Parallel {
    /// Elements of work below which one more thread does not pay for its start (~20 us).
    static let elementsPerThread = 1 << 17

    /// The threads a call may use: `requested` (opt->threads) if > 0, else
    /// $LOSSKIT_NUM_THREADS if set to a positive integer, else the online CPUs.
    static func available(requested: Int) -> Int {
        if requested > 0 { return requested }
        if let raw = getenv("LOSSKIT_NUM_THREADS") {
            var value = 0
            var p = raw
            var digits = 0
            while p.pointee >= 48, p.pointee <= 57, digits < 6 {
                value = value * 10 + Int(p.pointee - 48)
                p += 1
                digits += 1
            }
            if digits > 0, p.pointee == 0, value > 0 { return value }
        }
        return Swift.max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    /// The most threads a parallel pass of the calling thread's calls ran on since the last
    /// call of this (1 if none split): the determinism tests check with it that they split.
    static func takeWidestSplit() -> Int { Int(losskit_internal_take_widest_split()) }

    /// How many threads to use for `elements` of work split into `chunks` chunks.
    static func threads(requested: Int, elements: Int, chunks: Int) -> Int {
        let most = Swift.min(chunks, elements / elementsPerThread)
        // Work too small to split asks nothing more: sysconf(_SC_NPROCESSORS_ONLN) reads a file
        // in /sys (open, read, close), which cost small calls more than their computing.
        guard most > 1 else { return 1 }
        return Swift.max(1, Swift.min(available(requested: requested), most))
    }

    /// Runs `body(chunk, worker)` for every chunk in 0..<chunks; worker t in 0..<threads runs
    /// chunks t, t + threads, ... (worker 0 on the calling thread). Returns false, having run
    /// nothing on extra threads, if a thread could not be started (then everything ran on the
    /// calling thread).
    static func forEach(chunks: Int, threads: Int, _ body: (_ chunk: Int, _ worker: Int) -> Void) {
        guard threads > 1, chunks > 1 else {
            for chunk in 0..<chunks { body(chunk, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let job = Job(body: body, chunks: chunks, threads: threads)
            var started: [pthread_t] = []
            started.reserveCapacity(threads - 1)
            for worker in 1..<threads {
                let context = Unmanaged.passRetained(WorkerContext(job: job, worker: worker))
                var thread = pthread_t()
                if pthread_create(&thread, nil, { raw in
                    let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                    context.job.run(worker: context.worker)
                    return nil
                }, context.toOpaque()) == 0 {
                    started.append(thread)
                } else {
                    context.release()
                    // This worker's chunks run on the calling thread instead.
                    job.run(worker: worker)
                }
            }
            losskit_internal_note_split(Int32(started.count + 1))
            job.run(worker: 0)
            for thread in started { pthread_join(thread, nil) }
        }
    }

    private final class Job {
        let body: (Int, Int) -> Void
        let chunks: Int
        let threads: Int
        init(body: @escaping (Int, Int) -> Void, chunks: Int, threads: Int) {
            self.body = body
            self.chunks = chunks
            self.threads = threads
        }
        func run(worker: Int) {
            var chunk = worker
            while chunk < chunks {
                body(chunk, worker)
                chunk += threads
            }
        }
    }

    private final class WorkerContext {
        let job: Job
        let worker: Int
        init(job: Job, worker: Int) {
            self.job = job
            self.worker = worker
        }
    }
}
