//! One scenario, two implementations: every [`Client`] method is called on the embedded
//! store and on a real server (the same library behind `artifactstore serve`, on loopback),
//! with the same assertions. A method whose HTTP side and embedded side disagree — a member
//! renamed, a route changed, a check missing on one side — fails here.

use std::path::Path;
use std::time::Duration;

use artifact_client::{Client, ClientError, EmbeddedClient, HttpClient, NoProgress, PackageQuery};
use artifact_core::ArtifactStore;
use artifact_core::auth::Role;
use artifact_core::catalog::EventQuery;
use artifact_core::digest::AnyDigest;
use artifact_core::manifest::{FileEntry, Manifest};
use futures_util::StreamExt as _;

async fn open_store(dir: &Path) -> ArtifactStore {
    artifact_store_fs::EmbeddedOptions::new(dir.join("store"))
        .with_create(true)
        .open()
        .await
        .expect("open store")
}

/// A server on loopback over `store`, and an admin token for it.
async fn serve(store: &ArtifactStore, dir: &Path) -> (String, String) {
    let state = artifact_server::AppState::new(
        store.clone(),
        artifact_server::ServerOptions::new(dir.join("uploads")),
    )
    .expect("server state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(artifact_server::serve(
        listener,
        state,
        std::future::pending::<()>(),
    ));
    let minted = store
        .mint_token("test", "admin", &[Role::Admin], None, &[7u8; 32])
        .await
        .expect("mint");
    (base, minted.token)
}

macro_rules! client_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = super::open_store(dir.path()).await;
                    let client = super::EmbeddedClient::new(store.clone(), "admin");
                    super::$name(&client, &store, dir.path()).await;
                }
            )*
        }
        mod http {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = super::open_store(dir.path()).await;
                    let (base, token) = super::serve(&store, dir.path()).await;
                    let client = super::HttpClient::new(&base, Some(token)).expect("client");
                    super::$name(&client, &store, dir.path()).await;
                }
            )*
        }
    };
}

client_tests!(
    package_round_trip,
    retention_and_explain,
    bad_input_changes_nothing,
    follow_sees_commits_after_it_started,
    maintenance_and_tokens,
);

/// Pushes a two-file package the way `push` does; returns its manifest and the first file's
/// bytes.
async fn push<C: Client>(client: &C, dir: &Path, version: &str) -> Manifest {
    let a = dir.join(format!("a-{version}.txt"));
    let b = dir.join(format!("b-{version}.bin"));
    std::fs::write(&a, format!("hello {version}\n")).unwrap();
    std::fs::write(&b, vec![0xa5u8; 300_000]).unwrap();
    let mut files = Vec::new();
    let mut infos = Vec::new();
    for (path, name) in [(&b, "b.bin"), (&a, "docs/a.txt")] {
        let info = client.send_file(path, &NoProgress).await.expect("send");
        files.push(FileEntry {
            path: name.to_owned(),
            size: info.size,
            blake3: info.blake3,
            sha256: info.sha256,
            media_type: None,
        });
        infos.push(info);
    }
    let manifest = Manifest {
        name: "app".to_owned(),
        version: version.to_owned(),
        retention_class: "release-evidence".to_owned(),
        files,
        labels: [("git".to_owned(), "abc".to_owned())].into(),
    };
    let created = client
        .create_package(&manifest, &infos)
        .await
        .expect("create");
    assert!(created.created);
    assert_eq!(
        created.package.package_id(),
        manifest.package_id().unwrap().to_string()
    );
    manifest
}

async fn package_round_trip<C: Client>(client: &C, store: &ArtifactStore, dir: &Path) {
    let manifest = push(client, dir, "1.0").await;
    let id = manifest.package_id().unwrap().to_string();
    // Again: the identical manifest is answered, not created twice.
    let again = client.create_package(&manifest, &[]).await.expect("again");
    assert!(!again.created);

    let view = client.package("app@1.0").await.expect("package");
    assert_eq!(view.package_id(), id);
    assert_eq!(view.file_count, 2);
    assert_eq!(view.total_size, 300_000 + 10);
    assert_eq!(view.labels["git"], "abc");
    assert_eq!(view.retention.retention_class, "release-evidence");
    assert!(view.retention.current_expires_at.is_some());
    assert_eq!(client.package(&id).await.expect("by id"), view);

    let listed = client
        .list_packages(&PackageQuery {
            name: Some("app".to_owned()),
            ..PackageQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(listed, vec![view.clone()]);
    // A page shorter than the store: the server's answer has a next cursor.
    let second = push(client, dir, "1.1").await;
    let first_only = client
        .list_packages(&PackageQuery {
            limit: Some(1),
            ..PackageQuery::default()
        })
        .await
        .expect("list one");
    assert_eq!(first_only, vec![view.clone()]);
    let both = client
        .list_packages(&PackageQuery::default())
        .await
        .expect("list all");
    assert_eq!(both.len(), 2);
    assert_eq!(
        both[1].package_id(),
        second.package_id().unwrap().to_string()
    );
    let none = client
        .list_packages(&PackageQuery {
            eligible: true,
            ..PackageQuery::default()
        })
        .await
        .expect("list eligible");
    assert!(none.is_empty());

    let (read, bytes) = client.manifest(&id).await.expect("manifest");
    assert_eq!(read, manifest);
    assert_eq!(bytes, manifest.canonical_bytes().unwrap());

    let mut out = Vec::new();
    client
        .copy_file(
            &id,
            manifest.file("docs/a.txt").unwrap(),
            &mut out,
            &NoProgress,
        )
        .await
        .expect("copy file");
    assert_eq!(out, b"hello 1.0\n");
    let mut blob = Vec::new();
    client
        .copy_blob(
            &AnyDigest::Sha256(manifest.file("b.bin").unwrap().sha256),
            &mut blob,
            &NoProgress,
        )
        .await
        .expect("copy blob");
    assert_eq!(blob, vec![0xa5u8; 300_000]);
    client.check_live(&id).await.expect("live");

    let put = dir.join("loose");
    std::fs::write(&put, b"loose bytes").unwrap();
    let recorded = client.put_blob(&put, &NoProgress).await.expect("put blob");
    assert_eq!(recorded.size, 11);
    assert!(
        store
            .blob(&recorded.blake3.parse().unwrap())
            .await
            .unwrap()
            .is_some(),
        "put_blob records the blob"
    );
}

async fn retention_and_explain<C: Client>(client: &C, _store: &ArtifactStore, dir: &Path) {
    let manifest = push(client, dir, "2.0").await;
    let id = manifest.package_id().unwrap().to_string();
    let before = client.package(&id).await.unwrap().retention;
    let until: artifact_core::time::Timestamp = "2099-01-01T00:00:00Z".parse().unwrap();
    let extended = client
        .extend(&id, until, "audit asked")
        .await
        .expect("extend");
    assert_eq!(
        extended.current_expires_at.as_deref(),
        Some("2099-01-01T00:00:00.000Z")
    );
    assert!(extended.updated_seq > before.updated_seq);
    let hold = client.hold("app@2.0", "litigation").await.expect("hold");
    let held = client.package(&id).await.unwrap().retention;
    assert_eq!(held.active_holds, 1);
    assert_eq!(held.holds[0].hold_id, hold);
    let released = client
        .release(&id, &hold, "settled")
        .await
        .expect("release");
    assert_eq!(released.active_holds, 0);

    let history = client.retention_history(&id).await.expect("history");
    let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "v1.retention.default_applied",
            "v1.retention.extended",
            "v1.retention.hold_applied",
            "v1.retention.hold_released"
        ]
    );
    let explained = client.explain(&id, None).await.expect("explain");
    assert_eq!(explained.package_id, id);
    assert!(!explained.eligible_for_deletion);
    assert_eq!(
        explained.retained_until.as_deref(),
        Some("2099-01-01T00:00:00.000Z")
    );
    let sweep = client.sweep(None).await.expect("sweep");
    assert_eq!(sweep.newly_eligible, 0);
    assert!(sweep.refused.is_empty());
}

/// The error of a refused call: its HTTP status over HTTP, the store's error locally.
fn refused_status(error: &ClientError) -> Option<u16> {
    match error {
        ClientError::Core(core) => Some(match core {
            artifact_core::Error::NotFound { .. } => 404,
            artifact_core::Error::Conflict(_) => 409,
            artifact_core::Error::InvalidInput(_) => 400,
            _ => return None,
        }),
        other => other.status(),
    }
}

async fn bad_input_changes_nothing<C: Client>(client: &C, store: &ArtifactStore, dir: &Path) {
    let manifest = push(client, dir, "3.0").await;
    let id = manifest.package_id().unwrap().to_string();
    let head = store.head().await.unwrap();
    let earlier: artifact_core::time::Timestamp = "2001-01-01T00:00:00Z".parse().unwrap();
    let shorten = client.extend(&id, earlier, "shorten").await.unwrap_err();
    assert_eq!(refused_status(&shorten), Some(400), "{shorten}");
    let missing = client.package("app@9.9").await.unwrap_err();
    assert_eq!(refused_status(&missing), Some(404), "{missing}");
    let blank = client.hold(&id, "   ").await.unwrap_err();
    assert_eq!(refused_status(&blank), Some(400), "{blank}");
    let no_hold = client.release(&id, "hold-999", "x").await.unwrap_err();
    assert_eq!(refused_status(&no_hold), Some(404), "{no_hold}");
    let bad_ref = client.package("not a ref").await.unwrap_err();
    assert!(matches!(bad_ref, ClientError::Core(_)), "{bad_ref}");
    let bad_grace = client.gc(Some("soon"), true).await.unwrap_err();
    assert!(bad_grace.to_string().contains("grace"), "{bad_grace}");
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "refused calls changed the log"
    );
}

async fn follow_sees_commits_after_it_started<C: Client>(
    client: &C,
    _store: &ArtifactStore,
    dir: &Path,
) {
    let manifest = push(client, dir, "4.0").await;
    let id = manifest.package_id().unwrap().to_string();
    let existing = client.events(&EventQuery::default()).await.expect("events");
    let last = existing.last().expect("some events").seq;
    let mut follow = client.follow(0);
    for event in &existing {
        let next = tokio::time::timeout(Duration::from_secs(20), follow.next())
            .await
            .expect("existing event in time")
            .expect("stream open")
            .expect("event");
        assert_eq!(&next, event);
    }
    client.hold(&id, "new").await.expect("hold");
    let fresh = tokio::time::timeout(Duration::from_secs(20), follow.next())
        .await
        .expect("the new event arrives")
        .expect("stream open")
        .expect("event");
    assert_eq!(fresh.seq, last + 1);
    assert_eq!(fresh.event_type, "v1.retention.hold_applied");
}

async fn maintenance_and_tokens<C: Client>(client: &C, store: &ArtifactStore, dir: &Path) {
    push(client, dir, "5.0").await;
    let audit = client.audit().await.expect("audit");
    assert!(audit.ok, "{audit:?}");
    let head = store.head().await.unwrap();
    assert_eq!(audit.head.as_ref().map(|h| h.head_seq), Some(head.seq));
    let fsck = client.fsck().await.expect("fsck");
    assert!(fsck.ok, "{fsck:?}");
    assert_eq!(fsck.packages, 1);
    let verify = client.verify(1.0, None, &NoProgress).await.expect("verify");
    assert!(verify.ok);
    assert_eq!(verify.checked, 3, "two files and the manifest");
    let gc = client.gc(None, true).await.expect("gc");
    assert!(gc.purged.is_empty() && gc.deleted_blobs.is_empty());
    assert_eq!(
        client.rebuild_views().await.expect("rebuild"),
        store.head().await.unwrap().seq
    );

    let minted = client
        .mint_token("ci", &[Role::Writer, Role::Reader], None)
        .await
        .expect("mint");
    assert!(minted.token.starts_with("ast_"));
    let listed = client.list_tokens().await.expect("list");
    let mine = listed
        .iter()
        .find(|t| t.token_id == minted.record.token_id)
        .expect("listed");
    assert_eq!(mine.roles, ["reader", "writer"]);
    assert!(!mine.revoked);
    let revoked = client
        .revoke_token(&minted.record.token_id, "rotated")
        .await
        .expect("revoke");
    assert!(revoked.revoked);
    assert_eq!(revoked.principal, "ci");
}
