//! `[web]`: the citizens' pages of each town: the privacy notice's fields (GDPR art. 13)
//! and its version, the caller id of the verification calls, and the abuse limits.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The `[web]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Verification calls one IP address may ask for in an hour.
    #[serde(default = "five")]
    pub calls_per_ip_hour: u32,
    /// Verification calls one number may receive in a day.
    #[serde(default = "three")]
    pub calls_per_number_day: u32,
    /// Per-tenant pages, by tenant id (`[web.tenant.fondi]`).
    #[serde(default)]
    pub tenant: BTreeMap<String, TenantPage>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            calls_per_ip_hour: five(),
            calls_per_number_day: three(),
            tenant: BTreeMap::new(),
        }
    }
}

fn five() -> u32 {
    5
}
fn three() -> u32 {
    3
}

/// What a town's pages say about it; every field has a default so that a tenant without
/// a `[web.tenant.X]` table still gets complete pages.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TenantPage {
    /// The town's name as the pages print it (default: the tenant's display name).
    pub town: Option<String>,
    /// Caller id of the verification calls (E.164), unless the trunk forces its own.
    pub caller_id: Option<String>,
    /// The notice's version, stored with each consent.
    pub notice_version: Option<String>,
    /// Data controller (titolare del trattamento).
    pub controller: Option<String>,
    /// How to reach the controller.
    pub contact: Option<String>,
    /// Data protection officer (RPD/DPO) and contact.
    pub dpo: Option<String>,
    /// Purposes of the processing.
    pub purposes: Option<String>,
    /// Legal basis.
    pub legal_basis: Option<String>,
    /// How long data is kept.
    pub retention: Option<String>,
    /// The data subject's rights and how to use them.
    pub rights: Option<String>,
}

/// A town's notice with every field filled (configuration, else defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Town name.
    pub town: String,
    /// Version stored with consents.
    pub version: String,
    /// Data controller.
    pub controller: String,
    /// Contact.
    pub contact: String,
    /// DPO.
    pub dpo: String,
    /// Purposes.
    pub purposes: String,
    /// Legal basis.
    pub legal_basis: String,
    /// Retention.
    pub retention: String,
    /// Rights.
    pub rights: String,
}

impl TenantPage {
    /// The notice of a town named `display` (the tenant's record) with this page's fields.
    pub fn notice(&self, display: &str) -> Notice {
        let town = self.town.clone().unwrap_or_else(|| display.to_string());
        let or = |v: &Option<String>, d: String| v.clone().unwrap_or(d);
        Notice {
            version: or(
                &self.notice_version,
                engine::model::registrations::NOTICE_VERSION.to_string(),
            ),
            controller: or(&self.controller, format!("{town}, in persona del Sindaco")),
            contact: or(&self.contact, format!("l'ufficio protocollo di {town}")),
            dpo: or(
                &self.dpo,
                "il Responsabile della protezione dei dati nominato dall'ente".into(),
            ),
            purposes: or(
                &self.purposes,
                "avvisarti con una chiamata vocale in caso di emergenza (allerta meteo, \
                 alluvione, interruzione di servizi) o di comunicazioni di pubblica utilità \
                 nella tua zona"
                    .into(),
            ),
            legal_basis: or(
                &self.legal_basis,
                "il tuo consenso (art. 6.1.a GDPR), revocabile in ogni momento".into(),
            ),
            retention: or(
                &self.retention,
                "fino alla cancellazione; il consenso e la sua revoca sono conservati per \
                 dimostrarli"
                    .into(),
            ),
            rights: or(
                &self.rights,
                "accesso, rettifica, cancellazione, limitazione, opposizione e reclamo al \
                 Garante per la protezione dei dati personali; per cancellarti usa la pagina \
                 di cancellazione"
                    .into(),
            ),
            town,
        }
    }
}
