//! The store suite's test of prefix limits (issue 16): put, replace, list and delete per
//! scope (global and a tenant's), for both stores.

use super::tests::{fresh, suite, Harness, Pg, Sqlite};
use crate::model::prefix_limit::PrefixLimit;
use crate::store::Store;

fn lim(tenant: Option<&str>, prefix: &str, cps: f64, ch: u32) -> PrefixLimit {
    PrefixLimit {
        prefix: prefix.into(),
        cps,
        max_channels: ch,
        tenant: tenant.map(Into::into),
    }
}

async fn prefix_limits_per_scope<H: Harness>() {
    let Some((h, s)) = fresh::<H>().await else {
        return;
    };
    assert!(s.prefix_limits().await.unwrap().is_empty());
    s.put_prefix_limit(lim(None, "+39077", 10.0, 60), 1)
        .await
        .unwrap();
    s.put_prefix_limit(lim(Some("sora"), "+39077", 2.5, 4), 2)
        .await
        .unwrap();
    // The same scope and prefix again replaces it.
    s.put_prefix_limit(lim(None, "+39077", 5.0, 30), 3)
        .await
        .unwrap();
    let all = s.prefix_limits().await.unwrap();
    assert_eq!(
        all,
        [
            lim(None, "+39077", 5.0, 30),
            lim(Some("sora"), "+39077", 2.5, 4)
        ]
    );
    // Deleting the tenant's leaves the global one; a second delete finds nothing.
    assert!(s.delete_prefix_limit(Some("sora"), "+39077").await.unwrap());
    assert!(!s.delete_prefix_limit(Some("sora"), "+39077").await.unwrap());
    assert!(!s.delete_prefix_limit(None, "+39066").await.unwrap());
    // Kept across a restart.
    drop(s);
    let s = h.open().await;
    assert_eq!(
        s.prefix_limits().await.unwrap(),
        [lim(None, "+39077", 5.0, 30)]
    );
    assert!(s.delete_prefix_limit(None, "+39077").await.unwrap());
    assert!(s.prefix_limits().await.unwrap().is_empty());
}

suite!(prefix_limits_per_scope);
