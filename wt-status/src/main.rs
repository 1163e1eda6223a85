use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = wt_status::args::Args::parse();
    wt_common::cli::run_main("wt-status", || wt_status::run(args))
}
