//! Pacing per destination network: optional limits per E.164 prefix (`+39077` at 10 CPS
//! and 60 channels) on top of the trunks' own, so that a town's backlog does not trip the
//! terminating operator's congestion controls. A limit is global (the configuration's
//! `[[prefix_limit]]`, or the admin through `/v1/prefix-limits`) or a tenant's own (its
//! calls only). A number falls under the longest global prefix it starts with and under the
//! longest of its tenant's; both apply.
//!
//! [`lanes`] interleaves a campaign's queue by destination; [`pacer`] holds each limit's
//! CPS window and channel count for the core.

pub mod lanes;
pub mod pacer;

pub use crate::model::prefix_limit::{PrefixLimit, PrefixLimitError};

/// The limits in force: the configuration's, with a stored limit (the API's) replacing the
/// configuration's of the same scope and prefix.
pub fn merge(config: &[PrefixLimit], stored: Vec<PrefixLimit>) -> Vec<PrefixLimit> {
    let same = |a: &PrefixLimit, b: &PrefixLimit| a.tenant == b.tenant && a.prefix == b.prefix;
    let mut out: Vec<PrefixLimit> = config
        .iter()
        .filter(|c| !stored.iter().any(|s| same(c, s)))
        .cloned()
        .collect();
    out.extend(stored);
    out
}

/// The limits a number falls under: the index in the list of its longest global prefix
/// and of its tenant's longest.
pub fn applying(limits: &[PrefixLimit], tenant: &str, number: &str) -> Vec<usize> {
    let mut best: [Option<usize>; 2] = [None, None];
    for (i, l) in limits.iter().enumerate() {
        if !number.starts_with(&l.prefix) {
            continue;
        }
        let slot = match &l.tenant {
            None => 0,
            Some(t) if t == tenant => 1,
            Some(_) => continue,
        };
        if best[slot].is_none_or(|b| limits[b].prefix.len() < l.prefix.len()) {
            best[slot] = Some(i);
        }
    }
    best.into_iter().flatten().collect()
}

/// The lane a number goes to in its campaign's queue: the longest prefix of the limits it
/// falls under (`""` when none). Numbers of one lane fall under the same limits.
pub fn lane_key<'a>(limits: &'a [PrefixLimit], tenant: &str, number: &str) -> &'a str {
    applying(limits, tenant, number)
        .into_iter()
        .map(|i| limits[i].prefix.as_str())
        .max_by_key(|p| p.len())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(prefix: &str, tenant: Option<&str>) -> PrefixLimit {
        PrefixLimit {
            prefix: prefix.into(),
            cps: 5.0,
            max_channels: 10,
            tenant: tenant.map(Into::into),
        }
    }

    #[test]
    fn stored_limits_replace_the_configuration_of_their_scope() {
        let mut fast = lim("+39077", None);
        fast.cps = 50.0;
        let cfg = [lim("+39077", None), lim("+3906", None)];
        let got = merge(&cfg, vec![fast.clone(), lim("+39077", Some("sora"))]);
        assert_eq!(got, [lim("+3906", None), fast, lim("+39077", Some("sora"))]);
    }

    #[test]
    fn configuration_tables() {
        use crate::dialer::DialerConfig;
        let text = "[[prefix_limit]]\nprefix = \"+39077\"\ncps = 10\nmax_channels = 60\n\n\
                    [[prefix_limit]]\nprefix = \"+39077\"\ncps = 2\nmax_channels = 5\n\
                    tenant = \"sora\"\n";
        let cfg = DialerConfig::load_with(text, &|_| None).unwrap();
        assert_eq!(cfg.prefix_limits.len(), 2);
        assert_eq!(cfg.prefix_limits[1].tenant.as_deref(), Some("sora"));
        let bad = "[[prefix_limit]]\nprefix = \"39077\"\ncps = 10\nmax_channels = 6\n";
        let e = DialerConfig::load_with(bad, &|_| None).unwrap_err();
        assert!(e.to_string().contains("prefix_limit[0]"), "{e}");
        let dup =
            format!("{text}[[prefix_limit]]\nprefix = \"+39077\"\ncps = 1\nmax_channels = 1\n");
        let e = DialerConfig::load_with(&dup, &|_| None).unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
        let e = DialerConfig::load_with("[[prefix_limit]]\nprefix = \"+39\"\ncps = 1\n", &|_| None);
        assert!(e.is_err(), "max_channels is required");
    }

    #[test]
    fn longest_global_and_longest_of_the_tenant_apply() {
        let l = [
            lim("+39", None),
            lim("+39077", None),
            lim("+390771", Some("sora")),
            lim("+3906", Some("roma")),
        ];
        assert_eq!(applying(&l, "sora", "+390771286891"), [1, 2]);
        assert_eq!(lane_key(&l, "sora", "+390771286891"), "+390771");
        // Another tenant: only the global ones.
        assert_eq!(applying(&l, "roma", "+390771286891"), [1]);
        assert_eq!(lane_key(&l, "roma", "+390771286891"), "+39077");
        assert_eq!(applying(&l, "roma", "+39061234"), [0, 3]);
        assert_eq!(lane_key(&l, "x", "+441234"), "");
        assert!(applying(&l, "x", "+441234").is_empty());
    }
}
