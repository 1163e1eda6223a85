fn main() -> std::process::ExitCode {
    wt_run::run().into()
}
