//! Handlers of API v1 and the operational endpoints, one module per resource.

pub mod audit;
pub mod campaign_counts;
pub mod campaign_delivery;
pub mod campaign_types;
pub mod campaigns;
pub mod contacts;
pub mod ivr_prompts;
pub mod metrics;
pub mod nodes;
pub mod numbers;
pub mod prefix_limits;
pub mod prompts;
pub mod registrations;
pub mod streets;
pub mod tenants;
pub mod trunks;
pub mod webhooks;
