//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and
//! the types' `ToSchema` derives, served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::pagination::Page;
use super::problem::Problem;
use super::routes::prefix_limits;
use super::routes::{
    audit, campaigns, contacts, ivr_prompts, metrics, nodes, numbers, prompts, registrations,
    streets, tenants, trunks, webhooks,
};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "dialer", description = "Mass voice notification: tenants (towns), trunks, \
        inbound numbers, prompts, streets and zones, contacts, campaigns, webhooks, audit trail. Errors are application/problem+json \
        (RFC 9457); POST creates honour Idempotency-Key; lists use cursor pagination."),
    paths(
        tenants::create, tenants::list,
        trunks::list, trunks::get, trunks::create, trunks::replace, trunks::delete,
        numbers::create, numbers::list, numbers::delete,
        prefix_limits::create, prefix_limits::list, prefix_limits::delete,
        registrations::list, registrations::set_staff_pin,
        ivr_prompts::list, ivr_prompts::put, ivr_prompts::reset,
        prompts::create, prompts::list, prompts::get, prompts::delete, prompts::audio,
        streets::import, streets::zones,
        contacts::import, contacts::create, contacts::list, contacts::opt_out, contacts::erase,
        campaigns::create, campaigns::list, campaigns::get, campaigns::start, campaigns::pause,
        campaigns::resume, campaigns::cancel, campaigns::calls, campaigns::calls_csv,
        metrics::metrics, metrics::healthz, metrics::readyz, nodes::list,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete,
        webhooks::deliveries, webhooks::retry, audit::list,
    ),
    components(schemas(Problem, Page<tenants::TenantOut>)),
    modifiers(&Bearer, &Problems),
    tags((name = "tenants"), (name = "trunks"), (name = "numbers"), (name = "prefix-limits"), (name = "registrations"), (name = "ivr"), (name = "prompts"), (name = "streets"),
        (name = "contacts"), (name = "campaigns"), (name = "webhooks"), (name = "audit"), (name = "ops"))
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

/// Errors are `application/problem+json`: every error response is documented with that
/// media type, and every operation gets a `default` problem response (401, 413, 415,
/// 500, ... can come from any endpoint).
struct Problems;

impl Modify for Problems {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
        let problem = || {
            ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                .build()
        };
        for item in api.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                for (code, r) in op.responses.responses.iter_mut() {
                    let is_error = code.starts_with('4') || code.starts_with('5');
                    if let (true, RefOr::T(resp)) = (is_error, r) {
                        if let Some(c) = resp.content.shift_remove("application/json") {
                            resp.content.insert("application/problem+json".into(), c);
                        }
                    }
                }
                op.responses.responses.insert(
                    "default".into(),
                    RefOr::T(
                        ResponseBuilder::new()
                            .description("An error, as RFC 9457 problem details")
                            .content("application/problem+json", problem())
                            .build(),
                    ),
                );
            }
        }
    }
}

/// The document as JSON.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_string())
}
