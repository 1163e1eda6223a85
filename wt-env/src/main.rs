use clap::Parser;

fn main() -> std::process::ExitCode {
    wt_common::host::guard::early_main();
    let args = wt_env::args::Args::parse();
    wt_common::cli::run_main("wt-env", || wt_env::run(args))
}
