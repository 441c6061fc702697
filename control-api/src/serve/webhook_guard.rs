//! Keeps webhook deliveries off addresses the `[webhooks]` policy refuses
//! ([`engine::webhook::target`]): a URL with a literal address is checked before the
//! request, a host name by the resolver the delivery client uses, so what is checked is
//! the very address connected to (a name re-pointed after registration, or resolving to
//! several addresses, cannot slip through). Redirects are not followed at all.

use std::net::{IpAddr, SocketAddr};

use engine::webhook::TargetPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a delivery did not connect: every address of its host is refused.
#[derive(Debug, thiserror::Error)]
#[error("no address allowed by webhooks.allow_private_targets")]
pub struct TargetRefused;

/// The literal address of a URL's host, when it has one.
pub fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// The addresses of a resolution the policy allows, in their order.
pub fn allowed(
    policy: TargetPolicy,
    addrs: impl IntoIterator<Item = SocketAddr>,
) -> Vec<SocketAddr> {
    addrs
        .into_iter()
        .filter(|a| policy.allows(a.ip()))
        .collect()
}

/// The system resolver, keeping only the addresses the policy allows.
#[derive(Debug, Clone, Copy)]
pub struct PolicyResolver(pub TargetPolicy);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let ok = allowed(policy, found);
            if ok.is_empty() {
                return Err(Box::new(TargetRefused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// Whether an error (or one of its causes) is the policy's refusal.
pub fn is_refusal(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<TargetRefused>() {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_addresses_of_a_name_are_kept() {
        let found = [sa("127.0.0.1:0"), sa("8.8.8.8:0"), sa("[fd00::1]:0")];
        assert_eq!(
            allowed(TargetPolicy::PublicOnly, found),
            vec![sa("8.8.8.8:0")]
        );
        assert_eq!(allowed(TargetPolicy::Any, found).len(), 3);
    }

    #[test]
    fn literal_hosts_are_seen() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            literal_ip(&u("http://127.0.0.1:9/x")),
            Some(sa("127.0.0.1:0").ip())
        );
        assert_eq!(literal_ip(&u("https://[::1]/")), Some(sa("[::1]:0").ip()));
        assert_eq!(literal_ip(&u("https://example.org/")), None);
    }

    #[tokio::test]
    async fn a_name_with_only_loopback_addresses_is_refused() {
        let name: Name = "localhost".parse().unwrap();
        let err = PolicyResolver(TargetPolicy::PublicOnly)
            .resolve(name)
            .await
            .err()
            .expect("localhost resolves to loopback only");
        assert!(is_refusal(err.as_ref()));
        let name: Name = "localhost".parse().unwrap();
        assert!(PolicyResolver(TargetPolicy::Any)
            .resolve(name)
            .await
            .is_ok());
    }
}
