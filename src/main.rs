//! The `tunelink` binary: see `tunelink --help`.

/// mimalloc rather than glibc's malloc: with glibc, each idle socket cost ~9.7 KiB of
/// resident memory for ~5 KiB of live allocations (freed connection-setup memory stayed
/// scattered over per-thread arenas); with mimalloc, 3.9 KiB (BENCHMARKS.md, issue 13).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tunelink::cli::main()
}
