fn main() -> std::process::ExitCode {
    wt_common::host::guard::early_main();
    let args: wt_watch::args::Args = wt_common::record::cli::parse_args(wt_watch::TOOL);
    match wt_watch::run(args) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("{}: {}", wt_watch::TOOL, wt_common::record::cli::one_line(&e.message));
            e.kind.exit().into()
        }
    }
}
