//! What an INVITE, a REGISTER and an OPTIONS ping say, from a trunk's configuration and
//! the campaign's: pure functions, so that precedence rules are tested without SIP.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use metrics::SharedString;

use super::super::campaign::CampaignSpec;
use super::super::trunk::TrunkConfig;
use super::super::trunk_keys::offer_codec;
use crate::media::srtp::MasterKey;
use crate::sip::auth::Credentials;
use crate::sip::endpoint::{CallParams, RegisterParams};
use crate::sip::sdp::crypto::{SrtpMode, SrtpOffer};
use crate::sip::sdp::{OfferCodec, OfferParams};

/// The caller ID presented: the trunk's `caller_id` (a carrier that only accepts its own
/// numbers), else the campaign's, else the trunk's `from_user`, else `anonymous`.
pub fn caller_id(trunk: &TrunkConfig, campaign: &CampaignSpec) -> String {
    trunk
        .caller_id
        .clone()
        .or_else(|| campaign.caller_id.clone())
        .or_else(|| trunk.from_user.clone())
        .unwrap_or_else(|| "anonymous".into())
}

/// How long to ring before CANCEL: the campaign's setting, else the trunk's (at least 1 s).
pub fn ring_timeout(trunk: &TrunkConfig, campaign: &CampaignSpec) -> Duration {
    campaign
        .ring_timeout_s
        .map(Duration::from_secs)
        .unwrap_or_else(|| Duration::from_secs(trunk.ring_timeout_s.max(1)))
}

/// The host of a `host:port` proxy (brackets of an IPv6 literal removed).
pub fn host_of(proxy: &str) -> String {
    proxy
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(proxy)
        .trim_matches(['[', ']'])
        .to_string()
}

/// Host part of From and the Request-URI: `from_domain`, else the proxy's host.
pub fn domain(trunk: &TrunkConfig) -> String {
    trunk
        .from_domain
        .clone()
        .unwrap_or_else(|| host_of(&trunk.proxy))
}

/// Digest credentials when both user and password are set.
pub fn credentials(trunk: &TrunkConfig) -> Option<Credentials> {
    match (&trunk.username, &trunk.password) {
        (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.clone())),
        _ => None,
    }
}

/// The SDP offer: the trunk's codecs in its order (PCMA, PCMU when it lists none) and its
/// packet time. The RTP port is left 0: the driver reserves one when the INVITE leaves.
pub fn offer(trunk: &TrunkConfig, media_ip: IpAddr, session_id: u64) -> OfferParams {
    let mut o = OfferParams::g711(session_id, media_ip, 0);
    o.codecs = trunk.codecs.iter().map(|c| offer_codec(*c)).collect();
    if o.codecs.is_empty() {
        o.codecs = vec![OfferCodec::pcma(), OfferCodec::pcmu()];
    }
    o.ptime_ms = trunk.ptime_ms;
    o
}

/// SDES keying for a call on a trunk with `srtp` on: a fresh key from the core's CSPRNG.
pub fn srtp_offer<R: rand::CryptoRng + rand::RngCore>(
    mode: SrtpMode,
    rng: &mut R,
) -> Option<SrtpOffer> {
    let required = match mode {
        SrtpMode::Off => return None,
        SrtpMode::Optional => false,
        SrtpMode::Required => true,
    };
    Some(SrtpOffer {
        key: MasterKey::random(rng),
        required,
    })
}

/// Everything the INVITE of one attempt says.
///
/// `label` is the trunk's metric label, shared with its [`TrunkMetrics`](super::super::trunk_metrics::TrunkMetrics).
pub fn invite_params(
    trunk: &TrunkConfig,
    label: SharedString,
    proxy: SocketAddr,
    campaign: &CampaignSpec,
    number: &str,
    media_ip: IpAddr,
    session_id: u64,
) -> CallParams {
    let domain = domain(trunk);
    let caller = caller_id(trunk, campaign);
    CallParams {
        proxy,
        request_uri: ["sip:", number, "@", &domain].concat(),
        to_uri: ["sip:", number, "@", &domain].concat(),
        from_uri: ["sip:", &caller, "@", &domain].concat(),
        from_display: None,
        offer: offer(trunk, media_ip, session_id),
        ring_timeout: ring_timeout(trunk, campaign),
        credentials: credentials(trunk),
        transport: Some(trunk.transport.sip()),
        extra_headers: vec![],
        trunk: Some(label),
    }
}

/// The REGISTER of a trunk with `register = true`: the AoR user is the digest user, else
/// `from_user`, else `dialer`.
pub fn register_params(trunk: &TrunkConfig, registrar: SocketAddr) -> RegisterParams {
    let domain = domain(trunk);
    let user = trunk
        .username
        .clone()
        .or_else(|| trunk.from_user.clone())
        .unwrap_or_else(|| "dialer".into());
    RegisterParams {
        registrar,
        registrar_uri: format!("sip:{domain}"),
        aor: format!("sip:{user}@{domain}"),
        credentials: credentials(trunk),
        expires: 3600,
        transport: Some(trunk.transport.sip()),
    }
}

/// The Request-URI of a trunk's OPTIONS ping.
pub fn ping_uri(trunk: &TrunkConfig) -> String {
    format!("sip:{}", host_of(&trunk.proxy))
}

#[cfg(test)]
mod tests {
    use super::super::super::trunk_keys::TrunkTransport;
    use super::super::tests_support::{spec, trunk_cfg};
    use super::*;
    use codecs::Codec;
    use std::net::Ipv4Addr;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn caller_id_precedence() {
        let mut t = trunk_cfg("a", 10.0, 10);
        let mut c = spec();
        assert_eq!(caller_id(&t, &c), "anonymous");
        t.from_user = Some("fu".into());
        assert_eq!(caller_id(&t, &c), "fu");
        c.caller_id = Some("0771000".into());
        assert_eq!(caller_id(&t, &c), "0771000");
        t.caller_id = Some("0999".into());
        assert_eq!(caller_id(&t, &c), "0999");
    }

    #[test]
    fn ring_timeout_campaign_first() {
        let mut t = trunk_cfg("a", 10.0, 10);
        let mut c = spec();
        t.ring_timeout_s = 0;
        assert_eq!(ring_timeout(&t, &c), Duration::from_secs(1));
        t.ring_timeout_s = 30;
        assert_eq!(ring_timeout(&t, &c), Duration::from_secs(30));
        c.ring_timeout_s = Some(12);
        assert_eq!(ring_timeout(&t, &c), Duration::from_secs(12));
    }

    #[test]
    fn invite_says_codecs_ptime_domain_and_transport() {
        let mut t = trunk_cfg("a", 10.0, 10);
        t.proxy = "[::1]:5070".into();
        t.codecs = vec![Codec::G722, Codec::Pcma];
        t.ptime_ms = 30;
        t.transport = TrunkTransport::Tcp;
        let proxy: SocketAddr = "[::1]:5070".parse().unwrap();
        let p = invite_params(&t, "a".into(), proxy, &spec(), "+390771", IP, 42);
        assert_eq!(p.request_uri, "sip:+390771@::1");
        assert_eq!(p.from_uri, "sip:anonymous@::1");
        let names: Vec<&str> = p.offer.codecs.iter().map(|c| c.name).collect();
        assert_eq!(names, ["G722", "PCMA"]);
        assert_eq!(p.offer.ptime_ms, 30);
        assert_eq!(p.offer.session_id, 42);
        assert_eq!(p.transport, Some(crate::sip::endpoint::Transport::Tcp));
        assert_eq!(p.trunk.as_deref(), Some("a"));
        t.codecs.clear();
        let names: Vec<&str> = offer(&t, IP, 1).codecs.iter().map(|c| c.name).collect();
        assert_eq!(names, ["PCMA", "PCMU"]);
        t.from_domain = Some("carrier.example".into());
        assert_eq!(ping_uri(&t), "sip:::1");
        assert_eq!(register_params(&t, proxy).aor, "sip:dialer@carrier.example");
    }
}
