//! Nothing lost early on a local machine (issue 11): output files never follow planted links
//! or share temp names, a pull writes every file or nothing, read-only commands work on a
//! catalog this process cannot write, a locked catalog says so, the default actor names the OS
//! user, and zero is a valid GC grace.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value as Json;

use crate::kit::{Store, pattern};

fn checked_ok(output: Output, args: &[&str]) -> Vec<u8> {
    assert!(
        output.status.success(),
        "artifactstore {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs a command on `cli` that must fail with `artifactstore: …`; returns its stderr.
fn fails(cli: &Store, args: &[&str]) -> String {
    checked_fails(cli.run(args), args)
}

fn checked_fails(output: Output, args: &[&str]) -> String {
    assert!(
        !output.status.success(),
        "artifactstore {args:?} should have failed"
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.starts_with("artifactstore: "), "{stderr:?}");
    stderr
}

/// Every entry under `dir` (relative paths, sorted), links not followed.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

// ----- blob get --output ----------------------------------------------------------------------

/// Two `blob get -o` into the same directory at once (`out.one`, `out.two`: the old temp name
/// `out.artifactstore-partial` was shared) each write exactly their own blob.
#[test]
fn concurrent_blob_gets_into_one_directory_each_write_their_own_blob() {
    let cli = Store::with_actor("ci-bot");
    let one = pattern(6 << 20, 1);
    let two = pattern(6 << 20, 2);
    let pushed = cli.push_files("two", "1", &[("one.bin", &one), ("two.bin", &two)]);
    let manifest = cli.json(&["manifest", pushed["package_id"].as_str().unwrap()]);
    let digest = |path: &str| {
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .unwrap()["blake3"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (d1, d2) = (digest("one.bin"), digest("two.bin"));
    let out = cli.work().join("out");
    std::fs::create_dir(&out).unwrap();
    let (p1, p2) = (out.join("out.one"), out.join("out.two"));
    for round in 0..4 {
        let a = cli
            .command(&["blob", "get", &d1, "-o", p1.to_str().unwrap()])
            .spawn()
            .unwrap();
        let b = cli
            .command(&["blob", "get", &d2, "-o", p2.to_str().unwrap()])
            .spawn()
            .unwrap();
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        checked_ok(a, &["blob", "get", "one"]);
        checked_ok(b, &["blob", "get", "two"]);
        assert!(std::fs::read(&p1).unwrap() == one, "round {round}: out.one");
        assert!(std::fs::read(&p2).unwrap() == two, "round {round}: out.two");
        assert_eq!(
            listing(&out),
            ["out.one", "out.two"],
            "no temp file is left"
        );
    }
}

/// A link planted at the old predictable temp name is neither followed nor touched.
#[test]
fn blob_get_output_never_writes_through_a_planted_link() {
    let cli = Store::with_actor("ci-bot");
    let bytes = pattern(100_000, 3);
    let pushed = cli.push_files("one", "1", &[("a.bin", &bytes)]);
    let manifest = cli.json(&["manifest", pushed["package_id"].as_str().unwrap()]);
    let digest = manifest["files"][0]["blake3"].as_str().unwrap().to_owned();
    let out = cli.work().join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = cli.work().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, out.join("got.artifactstore-partial")).unwrap();

    cli.ok(&[
        "blob",
        "get",
        &digest,
        "-o",
        out.join("got.bin").to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(out.join("got.bin")).unwrap(), bytes);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(
        std::fs::symlink_metadata(out.join("got.artifactstore-partial"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // A corrupt blob: the output is not created and no temp file is left.
    std::fs::write(cli.blob_path(&digest), pattern(100_000, 4)).unwrap();
    let stderr = fails(
        &cli,
        &[
            "blob",
            "get",
            &digest,
            "-o",
            out.join("bad.bin").to_str().unwrap(),
        ],
    );
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert_eq!(listing(&out), ["got.artifactstore-partial", "got.bin"]);
}

// ----- pull -----------------------------------------------------------------------------------

/// A link planted at the old temp name `DEST/.x.artifactstore-partial` is not followed: the
/// file it points to keeps its bytes and `x` is written.
#[test]
fn pull_never_writes_through_a_link_planted_at_a_temp_name() {
    let cli = Store::with_actor("ci-bot");
    cli.push_files("p", "1", &[("x", b"package bytes")]);
    let dest = cli.work().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let victim = cli.work().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, dest.join(".x.artifactstore-partial")).unwrap();

    cli.ok(&["pull", "p@1", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(dest.join("x")).unwrap(), b"package bytes");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(listing(&dest), [".x.artifactstore-partial", "x"]);
}

/// A symlinked directory inside DEST is refused (with --force too), naming it, before anything
/// is written; nothing appears where it points.
#[test]
fn pull_refuses_a_symlinked_directory_inside_dest() {
    let cli = Store::with_actor("ci-bot");
    cli.push_files("p", "1", &[("a.txt", b"a"), ("sub/b.txt", b"b")]);
    let dest = cli.work().join("dest");
    let outside = cli.work().join("outside");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("sub")).unwrap();
    let head = cli.head_seq();

    for force in [false, true] {
        let mut args = vec!["pull", "p@1", dest.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        let stderr = fails(&cli, &args);
        assert!(stderr.contains("symbolic link"), "{stderr}");
        assert!(
            stderr.contains(&dest.join("sub").display().to_string()),
            "{stderr}"
        );
        assert_eq!(
            listing(&outside),
            Vec::<String>::new(),
            "nothing written outside DEST"
        );
        assert_eq!(
            listing(&dest),
            ["sub"],
            "nothing written inside DEST either"
        );
    }
    assert_eq!(cli.head_seq(), head);
}

/// A dangling link at a target path counts as an existing file: refused without --force
/// (before anything is written), replaced with --force (the link itself; nothing is created
/// where it pointed).
#[test]
fn pull_treats_a_dangling_link_as_an_existing_file() {
    let cli = Store::with_actor("ci-bot");
    cli.push_files("p", "1", &[("a.txt", b"a"), ("b.txt", b"b")]);
    let dest = cli.work().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let nowhere = cli.work().join("nowhere.txt");
    std::os::unix::fs::symlink(&nowhere, dest.join("b.txt")).unwrap();

    let stderr = fails(&cli, &["pull", "p@1", dest.to_str().unwrap()]);
    assert!(
        stderr.contains("already exist") && stderr.contains("b.txt"),
        "{stderr}"
    );
    assert_eq!(listing(&dest), ["b.txt"], "a.txt is not written either");
    assert!(!nowhere.exists());

    cli.ok(&["pull", "p@1", dest.to_str().unwrap(), "--force"]);
    let b = std::fs::symlink_metadata(dest.join("b.txt")).unwrap();
    assert!(b.file_type().is_file(), "the link was replaced by the file");
    assert_eq!(std::fs::read(dest.join("b.txt")).unwrap(), b"b");
    assert!(!nowhere.exists(), "the link was not followed");
}

/// Names the old temp scheme collided with or overflowed: `x` beside
/// `.x.artifactstore-partial`, and a 255-byte file name (the old temp name added 23 bytes).
#[test]
fn pull_writes_every_file_whatever_its_name() {
    let cli = Store::with_actor("ci-bot");
    let long = "n".repeat(251) + ".bin";
    assert_eq!(long.len(), 255);
    let long_path = format!("deep/{long}");
    let files: [(&str, &[u8]); 4] = [
        ("x", b"the real x"),
        (".x.artifactstore-partial", b"not a temp file"),
        (&long, b"long name"),
        (&long_path, b"long name, nested"),
    ];
    let pushed = cli.push_files("p", "1", &files);
    assert_eq!(pushed["file_count"], 4);
    let dest = cli.work().join("dest");
    let pulled = cli.json(&["pull", "p@1", dest.to_str().unwrap()]);
    assert_eq!(pulled["file_count"], 4);
    for (path, bytes) in files {
        assert_eq!(std::fs::read(dest.join(path)).unwrap(), bytes, "{path}");
    }
    let mut expected = vec![
        ".x.artifactstore-partial".to_owned(),
        "deep".to_owned(),
        long_path.clone(),
        long.clone(),
        "x".to_owned(),
    ];
    expected.sort();
    assert_eq!(listing(&dest), expected, "nothing else is left in DEST");
}

/// A pull that fails (here: the second file's blob is corrupt) leaves DEST as it was: no
/// partial or temp file, and not the files it had already fetched either.
#[test]
fn a_failed_pull_leaves_dest_as_it_was() {
    let cli = Store::with_actor("ci-bot");
    let pushed = cli.push_files(
        "p",
        "1",
        &[
            ("a/first.bin", &pattern(50_000, 5)),
            ("b.bin", &pattern(70_000, 6)),
        ],
    );
    let manifest = cli.json(&["manifest", pushed["package_id"].as_str().unwrap()]);
    let second = manifest["files"][1]["blake3"].as_str().unwrap().to_owned();
    assert_eq!(manifest["files"][1]["path"], "b.bin");
    std::fs::write(cli.blob_path(&second), pattern(70_000, 7)).unwrap();
    let dest = cli.work().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("keep.txt"), b"mine").unwrap();

    let stderr = fails(&cli, &["pull", "p@1", dest.to_str().unwrap()]);
    assert!(
        stderr.contains("corrupt") && stderr.contains("b.bin"),
        "{stderr}"
    );
    assert_eq!(listing(&dest), ["keep.txt"]);
}

// ----- read-only and locked catalogs ----------------------------------------------------------

/// Runs as an unprivileged user when the tests run as root (chmod does not stop root), so that
/// read-only permissions mean what they say.
fn as_unprivileged(mut command: Command) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        command.uid(65534).gid(65534);
    }
    command
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Makes `dir` and everything under it read-only for everyone (directories stay searchable).
fn make_read_only(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            make_read_only(&entry.path());
        } else if entry.file_type().unwrap().is_file() {
            chmod(&entry.path(), 0o444);
        }
    }
    chmod(dir, 0o555);
}

/// Gives the owner write access back (so the temp directory can be removed).
fn make_writable(dir: &Path) {
    chmod(dir, 0o755);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            make_writable(&entry.path());
        } else if entry.file_type().unwrap().is_file() {
            chmod(&entry.path(), 0o644);
        }
    }
}

/// The read-only commands against `data_dir`, run as a user who cannot write it; returns the
/// verified head seq.
fn read_only_commands_work(cli: &Store, data_dir: &Path, writable: &Path) -> u64 {
    let run = |args: &[&str]| {
        let mut command = cli.command(args);
        command.arg("--data-dir").arg(data_dir);
        as_unprivileged(command).output().unwrap()
    };
    let audit: Json =
        serde_json::from_slice(&checked_ok(run(&["--json", "audit", "verify"]), &["audit"]))
            .unwrap();
    assert_eq!(audit["ok"], true);
    let show: Json =
        serde_json::from_slice(&checked_ok(run(&["--json", "show", "p@1"]), &["show"])).unwrap();
    assert_eq!(show["name"], "p");
    for args in [
        &["ls"][..],
        &["manifest", "p@1"],
        &["cat", "p@1", "a.txt"],
        &["retention", "status", "p@1"],
        &["retention", "history", "p@1"],
        &["retention", "explain", "p@1"],
        &["events"],
    ] {
        checked_ok(run(args), args);
    }
    let dest = writable.join(data_dir.file_name().unwrap());
    checked_ok(run(&["pull", "p@1", dest.to_str().unwrap()]), &["pull"]);
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"alpha");
    // A command that writes fails clearly and records nothing.
    let stderr = checked_fails(
        run(&["retention", "hold", "p@1", "--reason", "audit"]),
        &["retention", "hold"],
    );
    assert!(
        stderr.contains("cannot be written by this process")
            || stderr.contains("Permission denied"),
        "{stderr}"
    );
    audit["head_seq"].as_u64().unwrap()
}

/// `show`, `audit verify`, `pull` and the other read-only commands work on a catalog whose
/// file and directory this process cannot write (another user's store), and on a copy of the
/// catalog alone in a read-only directory (an auditor's copy: no -wal/-shm beside it); a write
/// command fails with a clear error; neither changes anything.
#[test]
fn read_only_commands_work_on_a_catalog_this_process_cannot_write() {
    let cli = Store::with_actor("ci-bot");
    cli.push_files("p", "1", &[("a.txt", b"alpha")]);
    let head = cli.head_seq();
    // Others may enter the work directory; a writable place for pulls.
    chmod(cli.work(), 0o755);
    let writable = cli.work().join("writable");
    std::fs::create_dir(&writable).unwrap();
    chmod(&writable, 0o777);

    // An auditor's copy: the catalog file alone (after a checkpoint), read-only.
    let copy = cli.work().join("copy");
    std::fs::create_dir(&copy).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::sqlite::SqliteConnection::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new().filename(cli.data_dir.join("catalog.db")),
        )
        .await
        .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    });
    std::fs::copy(cli.data_dir.join("catalog.db"), copy.join("catalog.db")).unwrap();
    std::fs::create_dir_all(copy.join("blobs")).unwrap();
    copy_tree(
        &cli.data_dir.join("blobs/blake3"),
        &copy.join("blobs/blake3"),
    );

    make_read_only(&cli.data_dir);
    make_read_only(&copy);
    let in_place = read_only_commands_work(&cli, &cli.data_dir, &writable);
    let copied = read_only_commands_work(&cli, &copy, &writable);
    make_writable(&cli.data_dir);
    make_writable(&copy);
    assert_eq!((in_place, copied), (head, head));
    assert_eq!(cli.head_seq(), head);
    assert!(!copy.join("catalog.db-wal").exists() && !copy.join("catalog.db-shm").exists());
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Another process holds the catalog's write lock: read-only commands still work (they take no
/// lock), and a write command reports "locked by another process" after `[metadata]
/// busy_timeout` (here 0), not a configuration error, and changes nothing.
#[test]
fn a_locked_catalog_says_so_and_reads_still_work() {
    let cli = Store::with_actor("ci-bot");
    cli.push_files("p", "1", &[("a.txt", b"alpha")]);
    let head = cli.head_seq();
    std::fs::write(
        cli.data_dir.join("config.toml"),
        "[metadata]\nbusy_timeout = \"0s\"\n",
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut conn = runtime.block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::sqlite::SqliteConnection::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new().filename(cli.data_dir.join("catalog.db")),
        )
        .await
        .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    });

    let show = cli.json(&["show", "p@1"]);
    assert_eq!(show["name"], "p");
    assert_eq!(cli.head_seq(), head);
    let stderr = fails(
        &cli,
        &["retention", "hold", "p@1", "--reason", "while locked"],
    );
    assert!(stderr.contains("locked by another process"), "{stderr}");
    assert!(!stderr.contains("configuration"), "{stderr}");

    runtime.block_on(async {
        sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
    });
    drop(conn);
    assert_eq!(cli.head_seq(), head);
    cli.ok(&["retention", "hold", "p@1", "--reason", "after the lock"]);
    assert_eq!(cli.head_seq(), head + 1);
}

// ----- actor and durations --------------------------------------------------------------------

/// Without `--actor`, `$USER` and `$LOGNAME` (CI jobs, containers) the actor is the OS user
/// name of the uid (as `id -un` reports it), not `local:unknown`.
#[test]
fn the_default_actor_is_the_os_user_when_user_is_unset() {
    let cli = Store::with_actor("ci-bot");
    cli.push_files("p", "1", &[("a.txt", b"alpha")]);
    let output = cli
        .command(&["--json", "retention", "hold", "p@1", "--reason", "who am i"])
        .env_remove("ARTIFACTSTORE_ACTOR")
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    checked_ok(output, &["retention", "hold"]);
    let events = cli.json(&["events", "--type", "v1.retention.hold_applied"]);
    let id = Command::new("id").arg("-un").output().unwrap();
    let user = String::from_utf8(id.stdout).unwrap().trim().to_owned();
    assert!(!user.is_empty());
    assert_eq!(events[0]["actor"], format!("local:{user}"));
}

/// Zero is a valid grace (`0s` and `0`, flag and configuration); a calendar period is not a
/// duration.
#[test]
fn gc_accepts_a_zero_grace() {
    let cli = Store::with_actor("ci-bot");
    cli.push_files("p", "1", &[("a.txt", b"alpha")]);
    let head = cli.head_seq();
    for grace in ["0s", "0"] {
        let report = cli.json(&["gc", "--grace", grace, "--dry-run"]);
        assert_eq!(report["dry_run"], true, "{grace}");
    }
    let stderr = fails(&cli, &["gc", "--grace", "2y", "--dry-run"]);
    assert!(stderr.contains("not a duration"), "{stderr}");
    std::fs::write(cli.data_dir.join("config.toml"), "[gc]\ngrace = \"0\"\n").unwrap();
    cli.json(&["gc", "--dry-run"]);
    assert_eq!(cli.head_seq(), head);
}
