//! The `tunelink` binary: see `tunelink --help`.

fn main() -> std::process::ExitCode {
    tunelink::cli::main()
}
