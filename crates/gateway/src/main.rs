/// jemalloc, with its background threads on: they give memory the gateway
/// has freed back to the kernel (about 10 s after it was freed, jemalloc's
/// default decay), while the system allocator (glibc) keeps most of it after
/// a spike, with nothing to trigger a trim once the server is idle again.
///
/// Measured on release builds (memory-return, 2026-12; the full table is in
/// BENCHMARKS.md): RSS 30 s after a flood of `bench/floods.mjs` had ended,
/// against an engine without the flood fixes, 100 readers that stopped
/// reading 200 publishes: 882 MiB kept of an 888 MiB peak with glibc, 33 MiB
/// with this; 1,000 unfinished compressed fragments: 177 MiB with glibc, 17
/// MiB with this. The idle authenticated connection at 10,000 costs 3.61 to
/// 3.66 KiB with this, 3.83 to 3.88 with glibc; echo throughput is the same
/// within the noise. It costs about 1.3 MiB of RSS at startup, four idle
/// threads, and a peak 3 to 14 % higher during a spike. glibc with a
/// `malloc_trim(0)` every 10 s gave the memory back as well, but the first
/// trim after a spike took up to 220 ms, each arena locked while it is
/// trimmed; mimalloc kept the memory and cost 4.0 to 4.7 KiB per idle
/// connection.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    sockgate::cli::main()
}
