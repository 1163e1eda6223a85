fn main() -> std::process::ExitCode {
    wt_common::host::guard::early_main();
    let args: wt_create::args::Args = wt_common::record::cli::parse_args("wt-create");
    wt_common::record::cli::run_main("wt-create", || wt_create::run(args))
}
