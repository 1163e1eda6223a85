use clap::Parser;

fn main() -> std::process::ExitCode {
    wt_common::host::guard::early_main();
    let args = wt_watch::args::Args::parse();
    match wt_watch::run(args) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("{}: {e}", wt_watch::TOOL);
            e.kind.exit().into()
        }
    }
}
