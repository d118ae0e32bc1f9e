//! `skiff`: parses flags and runs the verb from the library ([`skiff_cli::run`]).

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use skiff_cli::flags::Flags;

fn main() -> ExitCode {
    let matches = Flags::command().get_matches();
    let mut flags = match Flags::from_arg_matches(&matches) {
        Ok(flags) => flags,
        Err(e) => e.exit(),
    };
    flags.namespace_given =
        matches.value_source("namespace") == Some(clap::parser::ValueSource::CommandLine);
    skiff_cli::run::main(flags)
}
