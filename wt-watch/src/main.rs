fn main() -> std::process::ExitCode {
    wt_watch::run().into()
}
