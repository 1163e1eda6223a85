use clap::Parser;

fn main() -> std::process::ExitCode {
    wt_common::host::guard::early_main();
    let args = wt_create::args::Args::parse();
    wt_common::cli::run_main("wt-create", || wt_create::run(args))
}
