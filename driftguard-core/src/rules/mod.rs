//! Rules: secrets, selectors, ignore and severity rules, risk findings, remediation, scopes, admission of live objects, renderers.

pub mod admission;
pub mod findings;
pub mod ignore;
pub mod remediate;
pub mod render;
pub mod scope;
pub mod secret;
pub mod selector;
pub mod severity;
pub mod yaml_edit;
