//! `skiff`: parses flags and runs the verb from the library ([`skiff_cli::run`]).

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use skiff_cli::flags::Flags;

fn main() -> ExitCode {
    let matches = match Flags::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => {
            if let Some(typed) = unknown_verb(&e) {
                eprint!("{}", skiff_cli::flags::unknown_verb_text(&typed));
                return ExitCode::FAILURE;
            }
            e.exit()
        }
    };
    let mut flags = match Flags::from_arg_matches(&matches) {
        Ok(flags) => flags,
        Err(e) => e.exit(),
    };
    flags.namespace_given =
        matches.value_source("namespace") == Some(clap::parser::ValueSource::CommandLine);
    skiff_cli::run::main(flags)
}

/// The verb typed, when clap refused it as an unknown top-level subcommand (a typo in a
/// nested one keeps clap's own message).
fn unknown_verb(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(typed)) = error.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let verbs: Vec<String> = Flags::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let before = std::env::args().skip(1).take_while(|a| a != typed);
    let nested = before.into_iter().any(|a| verbs.contains(&a));
    (!nested).then(|| typed.clone())
}
