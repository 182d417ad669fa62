//! What messages and pages say, in every form: alerts ([`alert`]), the daily summary
//! ([`summary`], its chart [`chart`]), the status page ([`page`]) and `scan`'s output
//! ([`report`]). Rendering is pure: it is handed values and returns text.

pub mod alert;
pub mod chart;
pub mod links;
pub mod page;
pub mod report;
pub mod summary;
