//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and
//! the types' `ToSchema` derives, served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::pagination::Page;
use super::problem::Problem;
use super::routes::{campaigns, contacts, metrics, prompts, streets, tenants, trunks};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "dialer", description = "Mass voice notification: tenants (towns), trunks, \
        prompts, streets and zones, contacts, campaigns. Errors are application/problem+json \
        (RFC 9457); POST creates honour Idempotency-Key; lists use cursor pagination."),
    paths(
        tenants::create, tenants::list,
        trunks::list, trunks::get, trunks::create, trunks::replace, trunks::delete,
        prompts::create, prompts::list, prompts::get, prompts::delete, prompts::audio,
        streets::import, streets::zones,
        contacts::import, contacts::create, contacts::list, contacts::opt_out, contacts::erase,
        campaigns::create, campaigns::list, campaigns::get, campaigns::start, campaigns::pause,
        campaigns::resume, campaigns::cancel, campaigns::calls, campaigns::calls_csv,
        metrics::metrics, metrics::healthz, metrics::readyz,
    ),
    components(schemas(Problem, Page<tenants::TenantOut>)),
    modifiers(&Bearer),
    tags((name = "tenants"), (name = "trunks"), (name = "prompts"), (name = "streets"),
        (name = "contacts"), (name = "campaigns"), (name = "ops"))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_string())
}
