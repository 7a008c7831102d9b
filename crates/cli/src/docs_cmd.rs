//! `mta-sts completions SHELL` and `mta-sts man`: generated from the clap definitions, so they
//! always match the flags.

use anyhow::Context;
use clap::CommandFactory;

use crate::Outcome;
use crate::args::{Cli, CompletionsArgs, ManArgs};

/// `completions bash|zsh|fish|...`: the script on standard output.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "mta-sts", &mut script);
    std::io::Write::write_all(&mut std::io::stdout(), &script)?;
    Ok(Outcome::Ok)
}

/// `man [--dir DIR]`: mta-sts.1 on standard output, or every page into DIR.
pub fn man(args: &ManArgs) -> anyhow::Result<Outcome> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
                .with_context(|| format!("cannot write manual pages into {}", dir.display()))?;
            eprintln!("wrote the manual pages into {}", dir.display());
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .context("cannot render the manual page")?;
            std::io::Write::write_all(&mut std::io::stdout(), &page)?;
        }
    }
    Ok(Outcome::Ok)
}
