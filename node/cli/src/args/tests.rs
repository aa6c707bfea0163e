//! Parsing of every command and flag, with `try_parse_from`.

use clap::error::ErrorKind;
use clap::CommandFactory;

use super::*;

fn parse(args: &[&str]) -> Cli {
    match Cli::try_parse_from(std::iter::once("dengine").chain(args.iter().copied())) {
        Ok(cli) => cli,
        Err(error) => panic!("{args:?} rejected: {error}"),
    }
}

fn rejected(args: &[&str]) -> ErrorKind {
    match Cli::try_parse_from(std::iter::once("dengine").chain(args.iter().copied())) {
        Ok(cli) => panic!("{args:?} accepted: {cli:?}"),
        Err(error) => error.kind(),
    }
}

#[test]
fn the_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn global_defaults() {
    let cli = parse(&["get", "k"]);
    assert_eq!(
        cli.global.endpoints,
        vec![EndpointAddr::parse("127.0.0.1:2379").unwrap()]
    );
    assert_eq!(cli.global.output, OutputFormat::Table);
    assert_eq!(cli.global.timeout, Duration::from_secs(5));
    assert_eq!(cli.global.consistency, None);
    assert_eq!(cli.global.read_policy(), ReadPolicy::Unspecified);
}

#[test]
fn global_flags_before_or_after_the_command() {
    let before = parse(&[
        "--endpoints",
        "http://a:1,b:2",
        "--output",
        "json",
        "--timeout",
        "500ms",
        "--consistency",
        "eventual",
        "get",
        "k",
    ]);
    let after = parse(&[
        "get",
        "k",
        "--endpoints=http://a:1,b:2",
        "-o",
        "json",
        "--timeout=500ms",
        "--consistency=eventual",
    ]);
    for cli in [before, after] {
        let endpoints: Vec<String> = cli
            .global
            .endpoints
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(endpoints, ["a:1", "b:2"]);
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.timeout, Duration::from_millis(500));
        assert_eq!(cli.global.read_policy(), ReadPolicy::Eventual);
    }
}

#[test]
fn consistency_maps_to_read_policy() {
    for (flag, policy) in [
        ("linearizable", ReadPolicy::Linearizable),
        ("lease", ReadPolicy::Lease),
        ("eventual", ReadPolicy::Eventual),
    ] {
        assert_eq!(
            parse(&["--consistency", flag, "scan", "p"])
                .global
                .read_policy(),
            policy
        );
    }
    assert_eq!(
        rejected(&["--consistency", "strong", "get", "k"]),
        ErrorKind::InvalidValue
    );
}

#[test]
fn bad_global_values_are_rejected() {
    let cases = [
        (["--output", "yaml"], ErrorKind::InvalidValue),
        (["--timeout", "5"], ErrorKind::ValueValidation),
        (["--timeout", "0s"], ErrorKind::ValueValidation),
        (["--endpoints", "ftp://a:1"], ErrorKind::ValueValidation),
        (["--endpoints", "a:1,,b:2"], ErrorKind::ValueValidation),
    ];
    for ([flag, value], kind) in cases {
        assert_eq!(rejected(&[flag, value, "get", "k"]), kind, "{flag} {value}");
    }
}

#[test]
fn unknown_flags_and_commands_are_rejected() {
    assert_eq!(
        rejected(&["get", "k", "--bogus"]),
        ErrorKind::UnknownArgument
    );
    assert_eq!(
        rejected(&["put", "k", "v", "--prefix"]),
        ErrorKind::UnknownArgument
    );
    assert_eq!(rejected(&["frobnicate"]), ErrorKind::InvalidSubcommand);
    assert_eq!(
        rejected(&[]),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
}

#[test]
fn put_with_ttl_and_prev_kv() {
    let Command::Put(put) = parse(&["put", "k", "v"]).command else {
        panic!("not a put")
    };
    assert_eq!((put.key.as_str(), put.value.as_str()), ("k", "v"));
    assert_eq!(put.ttl, None);
    assert!(!put.prev_kv);

    let Command::Put(put) = parse(&["put", "k", "v", "--ttl", "1m30s", "--prev-kv"]).command else {
        panic!("not a put")
    };
    assert_eq!(put.ttl, Some(Duration::from_secs(90)));
    assert!(put.prev_kv);
}

#[test]
fn put_rejects_a_bad_ttl_or_missing_value() {
    assert_eq!(
        rejected(&["put", "k", "v", "--ttl", "30"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        rejected(&["put", "k", "v", "--ttl", "0s"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(rejected(&["put", "k"]), ErrorKind::MissingRequiredArgument);
}

#[test]
fn values_may_start_with_a_dash_after_double_dash() {
    let Command::Put(put) = parse(&["put", "--", "-k", "-v"]).command else {
        panic!("not a put")
    };
    assert_eq!((put.key.as_str(), put.value.as_str()), ("-k", "-v"));
}

#[test]
fn get_takes_one_key() {
    let Command::Get(get) = parse(&["get", "k"]).command else {
        panic!("not a get")
    };
    assert_eq!(get.key, "k");
    assert_eq!(rejected(&["get"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(rejected(&["get", "a", "b"]), ErrorKind::UnknownArgument);
}

#[test]
fn del_and_its_alias() {
    for name in ["del", "delete"] {
        let Command::Del(del) = parse(&[name, "k", "--prev-kv"]).command else {
            panic!("not a del")
        };
        assert_eq!(del.key, "k");
        assert!(del.prev_kv);
    }
}

#[test]
fn cas_takes_exactly_one_expectation() {
    let expectation = |args: &[&str]| match parse(args).command {
        Command::Cas(cas) => cas.expectation(),
        other => panic!("not a cas: {other:?}"),
    };
    assert_eq!(
        expectation(&["cas", "k", "new", "--expect-value", "old"]),
        Expectation::Value("old".into())
    );
    assert_eq!(
        expectation(&["cas", "k", "new", "--expect-mod-revision", "7"]),
        Expectation::ModRevision(7)
    );
    assert_eq!(
        expectation(&["cas", "k", "new", "--expect-absent"]),
        Expectation::Absent
    );
    let Command::Cas(cas) = parse(&["cas", "k", "new", "--expect-absent", "--ttl", "10s"]).command
    else {
        panic!("not a cas")
    };
    assert_eq!(cas.ttl, Some(Duration::from_secs(10)));

    assert_eq!(
        rejected(&["cas", "k", "new"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        rejected(&[
            "cas",
            "k",
            "new",
            "--expect-absent",
            "--expect-value",
            "old"
        ]),
        ErrorKind::ArgumentConflict
    );
    assert_eq!(
        rejected(&["cas", "k", "new", "--expect-mod-revision", "0"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        rejected(&["cas", "k", "new", "--expect-mod-revision", "x"]),
        ErrorKind::ValueValidation
    );
}

#[test]
fn scan_paging_flags() {
    let scan = |args: &[&str]| match parse(args).command {
        Command::Scan(scan) => scan,
        other => panic!("not a scan: {other:?}"),
    };
    let all_by_default = scan(&["scan", "app/"]);
    assert_eq!(all_by_default.prefix, "app/");
    assert_eq!(all_by_default.limit, None);
    assert!(all_by_default.fetch_all_pages());

    let one_page = scan(&["scan", "app/", "--limit", "10", "--keys-only"]);
    assert_eq!(one_page.limit, Some(10));
    assert!(one_page.keys_only);
    assert!(!one_page.fetch_all_pages());

    let paged = scan(&["scan", "", "--limit", "10", "--all"]);
    assert_eq!(paged.prefix, "");
    assert!(paged.fetch_all_pages());

    assert_eq!(
        rejected(&["scan", "p", "--limit", "0"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        rejected(&["scan", "p", "--limit", "-1"]),
        ErrorKind::UnknownArgument
    );
    assert_eq!(rejected(&["scan"]), ErrorKind::MissingRequiredArgument);
}

#[test]
fn watch_flags() {
    let Command::Watch(watch) = parse(&["watch", "app/", "--prefix", "--rev", "42"]).command else {
        panic!("not a watch")
    };
    assert_eq!(watch.key, "app/");
    assert!(watch.prefix);
    assert_eq!(watch.rev, Some(42));
    assert_eq!(
        rejected(&["watch", "k", "--rev", "0"]),
        ErrorKind::ValueValidation
    );
}

#[test]
fn member_and_endpoint_subcommands() {
    assert!(matches!(
        parse(&["member", "list"]).command,
        Command::Member(MemberCommand::List)
    ));
    assert!(matches!(
        parse(&["endpoint", "status", "--endpoints", "a:1,b:2,c:3"]).command,
        Command::Endpoint(EndpointCommand::Status)
    ));
    assert_eq!(
        rejected(&["member"]),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    assert_eq!(
        rejected(&["member", "add"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        rejected(&["member", "evict", "2"]),
        ErrorKind::InvalidSubcommand
    );
    assert!(matches!(
        parse(&["member", "add", "4", "n4:2380"]).command,
        Command::Member(MemberCommand::Add { id: 4, ref peer_address }) if peer_address == "n4:2380"
    ));
    assert!(matches!(
        parse(&["member", "promote", "4", "--max-lag", "10"]).command,
        Command::Member(MemberCommand::Promote {
            id: 4,
            max_lag: Some(10)
        })
    ));
    assert!(matches!(
        parse(&["member", "remove", "4", "--force"]).command,
        Command::Member(MemberCommand::Remove { id: 4, force: true })
    ));
    assert_eq!(
        rejected(&["member", "remove", "0"]),
        ErrorKind::ValueValidation
    );
    assert!(matches!(
        parse(&["move-leader"]).command,
        Command::MoveLeader(MoveLeaderArgs { id: None })
    ));
    assert!(matches!(
        parse(&["move-leader", "3"]).command,
        Command::MoveLeader(MoveLeaderArgs { id: Some(3) })
    ));
}

#[test]
fn every_argument_and_subcommand_has_help() {
    fn check(command: &clap::Command, path: &str) {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(arg.get_help().is_some(), "{path} {id} has no help line");
        }
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            assert!(
                sub.get_about().is_some(),
                "{path} {} has no help line",
                sub.get_name()
            );
            check(sub, &format!("{path} {}", sub.get_name()));
        }
    }
    check(&Cli::command(), "dengine");
}

#[test]
fn help_documents_exit_status_and_byte_rendering() {
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("0x followed"), "{help}");
    assert!(help.contains("2 when a `cas` comparison failed"), "{help}");
    let mut command = Cli::command();
    let cas = command.find_subcommand_mut("cas").expect("cas exists");
    let cas_help = cas.render_long_help().to_string();
    assert!(cas_help.contains("exit status 2"), "{cas_help}");
}

#[test]
fn a_client_certificate_needs_a_ca() {
    let cli = parse(&[
        "get",
        "k",
        "--cert",
        "/nonexistent",
        "--key",
        "/nonexistent",
    ]);
    let error = cli.global.dial().unwrap_err();
    assert!(error.to_string().contains("need --cacert"), "{error}");
}

#[test]
fn an_unreadable_ca_is_named() {
    let cli = parse(&["get", "k", "--cacert", "/nonexistent/ca.pem"]);
    let error = cli.global.dial().unwrap_err();
    assert!(
        error
            .to_string()
            .contains("cannot read --cacert /nonexistent/ca.pem"),
        "{error}"
    );
}
