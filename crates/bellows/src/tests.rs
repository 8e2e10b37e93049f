use clap::{CommandFactory, Parser};

use super::Cli;

/// Every subcommand, with its path from `bellows`.
fn walk(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
    for sub in cmd.get_subcommands() {
        let p = format!("{path} {}", sub.get_name());
        out.push((p.clone(), sub.clone()));
        walk(sub, p, out);
    }
}

#[test]
fn every_argument_and_flag_in_help_says_what_it_does() {
    let mut cmd = Cli::command();
    cmd.build();
    let mut all = vec![("bellows".to_owned(), cmd.clone())];
    walk(&cmd, "bellows".to_owned(), &mut all);
    let mut bare = Vec::new();
    for (path, c) in &all {
        for a in c.get_arguments() {
            let id = a.get_id().as_str();
            if id == "help" || id == "version" || a.is_hide_set() {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                bare.push(format!("{path}: {id}"));
            }
        }
        if c.get_about().is_none() && path != "bellows" {
            bare.push(format!("{path}: (the command itself)"));
        }
    }
    assert!(
        bare.is_empty(),
        "arguments without a description in --help:\n{}",
        bare.join("\n")
    );
}

#[test]
fn state_dir_and_control_are_offered_only_where_they_do_something() {
    let mut cmd = Cli::command();
    cmd.build();
    let mut all = Vec::new();
    walk(&cmd, "bellows".to_owned(), &mut all);
    for (path, c) in all
        .iter()
        .filter(|(p, _)| !p.split(' ').any(|w| w == "help"))
    {
        let has = |id: &str| c.get_arguments().any(|a| a.get_id() == id);
        let standalone = [
            "bellows load",
            "bellows sim",
            "bellows validate",
            "bellows app",
            "bellows export",
            "bellows import",
        ]
        .iter()
        .any(|p| path == p || path.starts_with(&format!("{p} ")));
        let groups = ["bellows zone", "bellows ingress", "bellows app"].contains(&path.as_str());
        if standalone || groups {
            assert!(
                !has("state_dir") && !has("control"),
                "{path} lists --state-dir or --control, which it does not use"
            );
        } else {
            assert!(
                has("state_dir") && has("control"),
                "{path} talks to a running stack but takes no --state-dir and --control"
            );
        }
    }
    // Before the subcommand still works, as scripts and the tests write it.
    let cli = Cli::try_parse_from(["bellows", "--state-dir", "/tmp/x", "status"]).unwrap();
    let conn = cli.command.conn().unwrap().or(cli.conn);
    assert_eq!(
        conn.state_dir.as_deref(),
        Some(std::path::Path::new("/tmp/x"))
    );
    let cli = Cli::try_parse_from(["bellows", "status", "--state-dir", "/tmp/y"]).unwrap();
    let conn = cli.command.conn().unwrap().or(cli.conn);
    assert_eq!(
        conn.state_dir.as_deref(),
        Some(std::path::Path::new("/tmp/y"))
    );
    assert!(
        Cli::try_parse_from(["bellows", "load", "http://127.0.0.1:1/", "--state-dir", "x"])
            .is_err()
    );
}
