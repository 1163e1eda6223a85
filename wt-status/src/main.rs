fn main() -> std::process::ExitCode {
    wt_common::host::guard::early_main();
    let args: wt_status::args::Args = wt_common::record::cli::parse_args("wt-status");
    wt_common::record::cli::run_main("wt-status", || wt_status::run(args))
}
