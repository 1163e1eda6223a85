fn main() -> std::process::ExitCode {
    wt_common::host::guard::early_main();
    wt_watch::run().into()
}
