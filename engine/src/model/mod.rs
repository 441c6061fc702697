//! The dialer's domain model, at the bottom of the engine (it depends on nothing else in
//! it): campaigns with their one validation and one transition table, contacts and their
//! numbers, retry rules, calling windows, outcome words, and the phases of journal rows.
//!
//! The store reads and writes these types; the dialer decides with them; the API parses
//! requests into them. Stored and configured words are parsed into these enums once, at
//! the edge where they are read.

pub mod campaign;
pub mod contacts;
pub mod delivery;
pub mod dids;
pub mod heard;
pub mod numbers;
pub mod outcome;
pub mod prefix_limit;
pub mod registrations;
pub mod retry;
pub mod states;
pub mod window;

pub use campaign::{
    CampaignAction, CampaignError, CampaignSpec, CampaignState, Delivery, Priority, Target,
    ZoneMessage,
};
pub use contacts::{NewContact, Source};
pub use dids::{Did, Flow};
pub use heard::{AmdPolicy, AmdSpec, CallResult, Keys, Listened, Until};
pub use numbers::{normalize, NumberType};
pub use outcome::Outcome;
pub use registrations::{NewRegistration, Registered, Unregistered};
pub use retry::{RetryPolicy, RetryRule};
pub use states::{AttemptState, ContactState};
pub use window::{CallingWindow, Window};
