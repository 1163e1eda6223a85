fn main() -> std::process::ExitCode {
    wt_common::host::guard::early_main();
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some(wt_run::confine::HELPER) {
        wt_run::confine::helper_main(&raw);
    }
    let args = wt_run::args::Args::parse_or_exit();
    match wt_run::run(args) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("wt-run: {}", wt_common::record::cli::one_line(&err.message));
            err.kind.exit().into()
        }
    }
}
