fn main() -> std::process::ExitCode {
    wt_env::run().into()
}
