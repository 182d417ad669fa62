fn main() -> std::process::ExitCode {
    gatewatch::app::cli::main()
}
