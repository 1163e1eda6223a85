fn main() -> std::process::ExitCode {
    wt_common::host::guard::early_main();
    let args: wt_env::args::Args = wt_common::cli::parse_args("wt-env");
    wt_common::cli::run_main("wt-env", || wt_env::run(args))
}
