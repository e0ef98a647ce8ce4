//! Command-line arguments (parsing and validation only).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// An event-sourced, content-addressed artifact store.
#[derive(Debug, Parser)]
#[command(name = "artifactstore", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Data directory of the embedded store.
    #[arg(
        long,
        global = true,
        env = "ARTIFACTSTORE_DATA_DIR",
        default_value = "./artifactstore-data"
    )]
    pub(crate) data_dir: PathBuf,

    /// Configuration file (default: <data-dir>/config.toml when present).
    #[arg(long, global = true, env = "ARTIFACTSTORE_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Metadata store URL (sqlite://… or postgres://…), overriding the configuration.
    #[arg(long, global = true, env = "ARTIFACTSTORE_DATABASE_URL")]
    pub(crate) database_url: Option<String>,

    /// Talk to an artifactstore server instead of the embedded store.
    #[arg(long, global = true, env = "ARTIFACTSTORE_SERVER")]
    pub(crate) server: Option<String>,

    /// Bearer token for --server.
    #[arg(
        long,
        global = true,
        env = "ARTIFACTSTORE_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,

    /// Print one JSON (JCS) document instead of human output.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// The principal recorded as actor of local changes (default: local:$USER, else the OS user).
    #[arg(long, global = true, env = "ARTIFACTSTORE_ACTOR")]
    pub(crate) actor: Option<String>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create an embedded store (SQLite + fs) in the data directory.
    Init,
    /// Run the HTTP server (with the scheduled sweeper) over the data directory's store.
    Serve {
        /// Listen address (default: [server] listen, 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Upload files or directories as one package.
    Push(PushArgs),
    /// Write a package's files under DEST.
    Pull {
        /// Package id (blake3:…) or NAME@VERSION.
        package: String,
        /// Destination directory (created if missing).
        dest: PathBuf,
        /// Overwrite existing files (and links at file paths; a link inside DEST is refused).
        #[arg(long)]
        force: bool,
    },
    /// List packages.
    Ls {
        /// Only this name.
        #[arg(long)]
        name: Option<String>,
        /// Only this retention class.
        #[arg(long)]
        class: Option<String>,
        /// Only packages marked eligible for deletion.
        #[arg(long)]
        eligible: bool,
        /// At most this many.
        #[arg(long, default_value_t = artifact_core::paging::DEFAULT_LIST_LIMIT)]
        limit: u32,
    },
    /// Show a package and its retention state.
    Show {
        /// Package id or NAME@VERSION.
        package: String,
    },
    /// Write one file's bytes to stdout.
    Cat {
        /// Package id or NAME@VERSION.
        package: String,
        /// Path of the file in the package.
        path: String,
    },
    /// Print the manifest as JCS JSON, or its canonical CBOR bytes.
    Manifest {
        /// Package id or NAME@VERSION.
        package: String,
        /// Print the canonical CBOR bytes (whose BLAKE3 is the package id).
        #[arg(long)]
        cbor: bool,
    },
    /// Raw blobs in and out.
    #[command(subcommand)]
    Blob(BlobCommand),
    /// Retention: status, extensions, holds, history, sweeps, explanations.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Read the event log.
    Events(EventsArgs),
    /// Audit the event log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Operator commands.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Garbage collection: purge eligible packages, delete unreferenced blobs past the grace.
    Gc {
        /// Only blobs older than this go (default: [gc] grace, 24h; `0` = no grace).
        #[arg(long)]
        grace: Option<String>,
        /// List what would go and the bytes reclaimed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-read stored blobs and check both digests (records integrity events).
    Verify {
        /// Fraction of blobs to check, in (0, 1].
        #[arg(long, default_value_t = 1.0)]
        sample: f64,
        /// Read at most this many bytes per second.
        #[arg(long)]
        max_bytes_per_sec: Option<u64>,
    },
    /// Check the store's consistency (read-only); exits non-zero on any finding.
    Fsck,
}

#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// Files or directories (a directory's files keep their paths relative to it).
    #[arg(required = true)]
    pub(crate) paths: Vec<PathBuf>,
    /// Package name.
    #[arg(long)]
    pub(crate) name: String,
    /// Package version.
    #[arg(long)]
    pub(crate) version: String,
    /// Retention class.
    #[arg(long, default_value = "build-cache")]
    pub(crate) class: String,
    /// A label KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("label `{text}` must be KEY=VALUE"))
}

#[derive(Debug, Subcommand)]
pub(crate) enum BlobCommand {
    /// Store a file as a blob; prints both digests.
    Put {
        /// The file.
        file: PathBuf,
    },
    /// Write a blob (by either digest) to stdout or a file.
    Get {
        /// blake3:… or sha256:…
        digest: String,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RetentionCommand {
    /// Current retention state.
    Status {
        /// Package id or NAME@VERSION.
        package: String,
    },
    /// Move the expiry later.
    Extend {
        /// Package id or NAME@VERSION.
        package: String,
        /// New expiry (RFC 3339), strictly later than the current one.
        #[arg(long)]
        until: String,
        /// Why (mandatory).
        #[arg(long)]
        reason: String,
    },
    /// Apply a hold; prints the hold id.
    Hold {
        /// Package id or NAME@VERSION.
        package: String,
        /// Why (mandatory).
        #[arg(long)]
        reason: String,
    },
    /// Release a hold.
    Release {
        /// Package id or NAME@VERSION.
        package: String,
        /// The hold id.
        hold_id: String,
        /// Why (mandatory).
        #[arg(long)]
        reason: String,
    },
    /// Every retention event of a package, in order.
    History {
        /// Package id or NAME@VERSION.
        package: String,
        /// Print a canonical CBOR array of the envelopes.
        #[arg(long, conflicts_with = "proof")]
        cbor: bool,
        /// Print a receipt per event instead (JSON `{receipts: [...]}`), each verifiable
        /// offline with `audit verify-receipt`; makes a checkpoint first if the latest does
        /// not cover the history (locally; over `--server` the server does).
        #[arg(long)]
        proof: bool,
    },
    /// Mark expired, unheld packages eligible for deletion; prints how many.
    Sweep {
        /// Sweep as of this instant (RFC 3339) instead of now.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Why is this package retained, or (not) eligible?
    Explain {
        /// Package id or NAME@VERSION.
        package: String,
        /// Explain as of this instant (RFC 3339) instead of now.
        #[arg(long)]
        as_of: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Only events after this seq.
    #[arg(long, default_value_t = 0)]
    pub(crate) after: u64,
    /// Only events of this package (id or NAME@VERSION).
    #[arg(long)]
    pub(crate) package: Option<String>,
    /// Only events of this type (e.g. v1.retention.extended).
    #[arg(long = "type")]
    pub(crate) event_type: Option<String>,
    /// At most this many (without --follow).
    #[arg(long)]
    pub(crate) limit: Option<u32>,
    /// Keep printing new events as they are appended.
    #[arg(long)]
    pub(crate) follow: bool,
    /// Print canonical CBOR (an array; with --follow, one envelope after another).
    #[arg(long)]
    pub(crate) cbor: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the hash chain; prints the head seq and hash. With --checkpoint, also check that
    /// today's log is consistent with that earlier signed checkpoint.
    Verify {
        /// A signed checkpoint saved earlier (a file holding the note).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The verifier key (NAME+KEYID+KEY, or a file holding it); default: this store's key.
        #[arg(long)]
        key: Option<String>,
        /// Check today's log against the latest checkpoint published to each configured sink
        /// (`[log] publish_dir`, `[log.publish_s3]`); exits 1 naming the sink and the first
        /// diverging size when one does not match.
        #[arg(long, conflicts_with = "checkpoint")]
        published: bool,
    },
    /// Print the log's verifier key (NAME+KEYID_HEX+BASE64(0x01 ‖ pubkey)).
    Key,
    /// Make a signed checkpoint if the log grew; print the latest.
    Checkpoint,
    /// List the signed checkpoints, smallest tree size first.
    Checkpoints {
        /// Only checkpoints with a tree size above this.
        #[arg(long)]
        after: Option<u64>,
        /// At most this many (default 100).
        #[arg(long, default_value_t = artifact_core::paging::DEFAULT_PAGE_LIMIT)]
        limit: u32,
    },
    /// Print a receipt: the event's bytes, its inclusion proof and the signed checkpoint.
    Prove {
        /// The event.
        #[arg(long)]
        seq: u64,
        /// A checkpointed tree size (default: the latest checkpoint, made now if it does not
        /// cover the event).
        #[arg(long)]
        tree_size: Option<u64>,
    },
    /// Print a consistency proof between two tree sizes.
    Consistency {
        /// The older size.
        #[arg(long)]
        from_size: u64,
        /// The newer size (default: the latest checkpoint's).
        #[arg(long)]
        to_size: Option<u64>,
    },
    /// Check a receipt offline, without a store.
    VerifyReceipt {
        /// The receipt (the JSON of `audit prove --json`).
        file: PathBuf,
        /// The verifier key (NAME+KEYID+KEY, or a file holding it).
        #[arg(long)]
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Rebuild every view by replaying the event log.
    RebuildViews,
    /// Recompute the verifiable log's Merkle tree from the stored event bytes (after fsck
    /// reports a `tree` finding); changes no event and no checkpoint.
    RebuildTree,
    /// Re-apply on the storage (S3 Object Lock) every retention and legal hold the log
    /// requires, remove delete markers hiding locked versions, clear legal holds nothing
    /// requires; records every change (after fsck reports lock drift).
    ReconcileLocks,
    /// Bearer tokens for the server.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Mint a token; prints it once (only its hash is stored, as an event).
    Create {
        /// The principal recorded as actor of the token's requests.
        #[arg(long)]
        principal: String,
        /// A role: reader, writer, retention-admin, admin (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Stop accepting the token at this instant (RFC 3339; judged by the store's clock).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List minted tokens (never the tokens themselves): id, principal, roles, created,
    /// expires, revoked.
    List,
    /// Revoke a minted token: every server refuses it (401) from its next request on.
    Revoke {
        /// The token's id (`tok-<seq>`, from `admin token list`).
        token_id: String,
        /// Why (recorded in the `v1.auth.token_revoked` event).
        #[arg(long)]
        reason: String,
    },
}
