fn main() -> std::process::ExitCode {
    wt_common::host::guard::early_main();
    let args: wt_merge::args::Args = wt_common::record::cli::parse_args("wt-merge");
    wt_common::record::cli::run_main("wt-merge", || wt_merge::run(args))
}
