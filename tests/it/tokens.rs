//! The token lifecycle in the library (issue 11): minting with and without expiry, listing,
//! revoking (reason mandatory, specific errors, nothing changed when refused), expiry judged by
//! the store's clock, reserved principals, and the views staying a replay of the log.

use crate::support::assert_views_match_replay;
use artifact_core::auth::Role;
use artifact_core::event::types;
use artifact_core::time::ymd;
use artifact_core::{Error, TokenCheck};

use crate::support::{Backend, Fixture, all_events, backend_tests};

backend_tests! {
    #[tokio::test]
    tokens_are_minted_listed_revoked_and_expire_by_the_store_clock,
    #[tokio::test]
    refused_token_operations_change_nothing,
}

async fn tokens_are_minted_listed_revoked_and_expire_by_the_store_clock(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let forever = store
        .mint_token("ops", "ci", &[Role::Writer, Role::Reader], None, &[1; 32])
        .await
        .unwrap();
    let expires = ymd(2026, 2, 1);
    let brief = store
        .mint_token(
            "ops",
            "contractor",
            &[Role::Reader],
            Some(expires),
            &[2; 32],
        )
        .await
        .unwrap();
    // Without an expiry the event is exactly what it always was (old events stay valid and
    // their canonical bytes are unchanged); with one, `expires_at` is data of the event.
    let events = all_events(store).await;
    let created: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == types::AUTH_TOKEN_CREATED)
        .collect();
    assert_eq!(created.len(), 2);
    let keys =
        |i: usize| -> Vec<String> { created[i].data.as_map().unwrap().keys().cloned().collect() };
    assert_eq!(keys(0), ["principal", "roles", "token_sha256"]);
    assert_eq!(
        keys(1),
        ["expires_at", "principal", "roles", "token_sha256"]
    );
    assert_eq!(
        created[1].data_text("expires_at"),
        Some("2026-02-01T00:00:00.000Z")
    );
    assert_eq!(forever.record.token_id, format!("tok-{}", created[0].seq));

    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed, vec![forever.record.clone(), brief.record.clone()]);
    assert_eq!(listed[0].created_at, ymd(2026, 1, 1));
    assert_eq!(listed[1].expires_at, Some(expires));
    assert!(
        !artifact_core::jcs::to_jcs(&listed[0].to_value()).contains(&listed[0].token_sha256),
        "the listed value carries no hash"
    );

    // Valid until the store's clock reaches the expiry.
    assert!(matches!(
        store.check_token(&brief.token).await.unwrap(),
        TokenCheck::Valid(p) if p.name == "contractor"
    ));
    fixture.clock.set(ymd(2026, 2, 1));
    assert_eq!(
        store.check_token(&brief.token).await.unwrap(),
        TokenCheck::Expired {
            token_id: brief.record.token_id.clone(),
            expires_at: expires,
        }
    );
    assert_eq!(store.token_principal(&brief.token).await.unwrap(), None);
    assert!(
        store
            .token_principal(&forever.token)
            .await
            .unwrap()
            .is_some()
    );

    // Revoked through one handle, refused through another at once.
    let other = fixture.second_handle().await;
    let revoked = store
        .revoke_token("ops", &forever.record.token_id, "rotated")
        .await
        .unwrap();
    assert!(revoked.revoked_seq.is_some());
    assert!(matches!(
        other.check_token(&forever.token).await.unwrap(),
        TokenCheck::Revoked { ref token_id, .. } if *token_id == forever.record.token_id
    ));
    let last = all_events(store).await.pop().unwrap();
    assert_eq!(last.event_type, types::AUTH_TOKEN_REVOKED);
    assert_eq!(last.actor, "ops");
    assert_eq!(last.data_text("reason"), Some("rotated"));
    assert_eq!(
        last.data_text("token_id"),
        Some(forever.record.token_id.as_str())
    );
    assert_eq!(
        store.check_token("ast_never-minted").await.unwrap(),
        TokenCheck::Unknown
    );

    // The views are a replay of the log, expiry and revocation included.
    assert_views_match_replay(store).await;
    let before = store.list_tokens().await.unwrap();
    store.rebuild_views().await.unwrap();
    assert_eq!(store.list_tokens().await.unwrap(), before);
}

async fn refused_token_operations_change_nothing(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let minted = store
        .mint_token("ops", "ci", &[Role::Writer], None, &[1; 32])
        .await
        .unwrap();
    store
        .revoke_token("ops", &minted.record.token_id, "first")
        .await
        .unwrap();
    let head = store.head().await.unwrap();
    let id = minted.record.token_id.as_str();
    let mint = |principal: &'static str, role: Role, expires| async move {
        store
            .mint_token("ops", principal, &[role], expires, &[2; 32])
            .await
            .err()
    };
    let refusals = [
        store.revoke_token("ops", id, "second").await.err(),
        store
            .revoke_token("ops", "tok-424242", "unknown")
            .await
            .err(),
        store.revoke_token("ops", id, "").await.err(),
        store.revoke_token("ops", "ci", "not an id").await.err(),
        store.revoke_token("ops", "tok-", "not an id").await.err(),
        mint("system:gc", Role::Admin, None).await,
        mint("System:Recovery", Role::Admin, None).await,
        mint("late", Role::Reader, Some(ymd(2026, 1, 1))).await,
        mint("late", Role::Reader, Some(ymd(2025, 1, 1))).await,
    ];
    let refusals: Vec<Error> = refusals.into_iter().map(|e| e.expect("refused")).collect();
    assert!(
        matches!(&refusals[0], Error::Conflict(m) if m.contains("already revoked")),
        "{}",
        refusals[0]
    );
    assert!(
        matches!(&refusals[1], Error::NotFound { what: "token", .. }),
        "{}",
        refusals[1]
    );
    for refusal in &refusals[2..] {
        assert!(matches!(refusal, Error::InvalidInput(_)), "{refusal}");
    }
    assert!(refusals[5].to_string().contains("reserved"));
    assert!(refusals[7].to_string().contains("not in the future"));
    assert_eq!(store.head().await.unwrap(), head, "refusals append nothing");
}
