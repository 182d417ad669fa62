fn main() -> std::process::ExitCode {
    gatewatch::cli::main()
}
