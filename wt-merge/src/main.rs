fn main() -> std::process::ExitCode {
    wt_merge::run().into()
}
