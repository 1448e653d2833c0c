//! The `fsjournal` binary: the agent (`run`) and the journal inspection CLI,
//! both in the library (`lib.rs`).

fn main() -> std::process::ExitCode {
    fsjournal::main()
}
