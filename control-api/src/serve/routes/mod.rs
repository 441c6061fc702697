//! Handlers of API v1 and the operational endpoints, one module per resource.

pub mod campaign_types;
pub mod campaigns;
pub mod contacts;
pub mod metrics;
pub mod prompts;
pub mod streets;
pub mod tenants;
pub mod trunks;
