fn main() -> std::process::ExitCode {
    sockgate::cli::main()
}
