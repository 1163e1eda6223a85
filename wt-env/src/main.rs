fn main() -> std::process::ExitCode {
    wt_common::host::guard::early_main();
    let args: wt_env::args::Args = wt_common::record::cli::parse_args("wt-env");
    wt_common::record::cli::run_main("wt-env", || wt_env::run(args))
}
