//! Terraform: what a root module's plans say about drift, as DriftGuard's observations.
//!
//! A Terraform environment is checked with two read-only plans of one root module and
//! workspace ([`PlanRun`], gathered by a [`PlanSource`](crate::ports::PlanSource)):
//!
//! - `terraform plan -refresh-only` compares the **state** (what the last apply wrote) with
//!   the **cloud** as it is now (`resource_drift`): what changed outside Terraform, and what
//!   was deleted;
//! - a normal `terraform plan` compares the **code** with the cloud (`resource_changes`):
//!   what an apply would change.
//!
//! Three views of each resource instance follow: the code's (the planned values, with the
//! values only known after an apply left out), the cloud's (the refreshed state) and the
//! state's. [`observe`] turns them into one [`Observation`](crate::state::Observation) per resource, which the one state
//! machine of [`crate::state`] runs like any other:
//!
//! - **identity**: environment, provider (`aws`, from `registry.terraform.io/hashicorp/aws`)
//!   as the group, resource type as the kind, and the resource address as the name
//!   (`prod:aws_security_group.aws/aws_security_group.web`);
//! - **modified**: code and cloud differ in some attributes; an attribute changed outside
//!   Terraform (the state agrees with the code) is forward, one changed in the code and not
//!   applied (the state agrees with the cloud) is reverse, both is conflict. An attribute
//!   the code leaves unset that changed outside Terraform (an apply would not touch it) is
//!   forward drift when the provider's schema says a configuration may set it (an argument:
//!   the cloud moves only computed attributes by itself, [`Arguments`]) and no other resource
//!   of the state names the resource (it may write to it); a security group's rules left to
//!   rule resources are drift less the rules those own (`unset.rs`); a nested block of one
//!   instance is compared field by field;
//! - **empty state**: a check whose state holds no resource is refused
//!   ([`TerraformError::EmptyState`]) unless the environment expects it;
//! - **missing**: in the code, not in the cloud: forward when the state has it (deleted
//!   outside Terraform), reverse when it does not (never applied);
//! - **orphan**: in the state and the cloud but no longer in the code (reverse: an apply
//!   would destroy it), or, with a [`CloudInventory`], in the cloud account and in no state at
//!   all (forward: made by hand; [`cloud`]);
//! - **sensitive values** (`before_sensitive`, `after_sensitive`, a state's
//!   `sensitive_values`) are replaced by keyed hashes (HMAC-SHA256 with the Secret key) as the
//!   plan is read ([`read_plan`]): no plain text reaches an observation, a record, an event
//!   or a message, and a changed sensitive attribute shows as `(secret value)`;
//! - **applied**: the state's lineage and serial are the apply mark
//!   ([`Observation::applied_mark`](crate::state::Observation::applied_mark)): a drift that ends in a check where the state was
//!   written was ended by `terraform apply`.
//!
//! Where each resource is declared ([`declare`]) gives its provenance; the commit named for a
//! reverse drift is the newest that changed its module's folder, the calls of its module chain
//! or the variable files ([`Observation::depends_on`](crate::state::Observation::depends_on)).

pub mod cloud;
pub mod codify;
pub mod declare;
mod observe;
mod plan;
mod schema;
mod unset;
mod values;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::Revision;
use crate::render::RenderError;

pub use cloud::{CloudError, CloudInventory, CloudResource};
pub use declare::{Declaration, DeclarationKind};
pub use observe::{observe, PlanView};
pub use plan::{read_plan, Action, Change, Plan, PlannedResource};
pub use schema::Arguments;
pub use values::compare_values;

/// The group of resources a provider manages: the provider's type (`aws` for
/// `registry.terraform.io/hashicorp/aws`).
pub fn provider_group(provider_name: &str) -> &str {
    provider_name.rsplit('/').next().unwrap_or(provider_name)
}

/// The JSON text `terraform show -json` printed for one plan. It holds sensitive values in
/// plain text (Terraform prints them so), so it is never printed: its `Debug` shows only its
/// size. [`read_plan`] reads it with every sensitive value hashed.
#[derive(Clone, PartialEq, Eq)]
pub struct RawPlan(Arc<str>);

impl RawPlan {
    /// Wraps the text.
    pub fn new(text: impl Into<Arc<str>>) -> Self {
        RawPlan(text.into())
    }

    /// The text (plain text of sensitive values included: never print or store it).
    pub fn text(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawPlan({} bytes, content redacted)", self.0.len())
    }
}

/// Which state the plans read: its lineage and serial, as `terraform state pull` shows them.
/// Every apply that changes something writes the state with a higher serial.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMark {
    /// The state's lineage (a new state gets a new one).
    pub lineage: String,
    /// The state's serial.
    pub serial: u64,
}

impl StateMark {
    /// The apply mark of observations ([`crate::state::Observation::applied_mark`]).
    pub fn hash(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(format!("{}#{}", self.lineage, self.serial).as_bytes())
    }
}

/// Where a root module is, for provenance: its folder, relative to the source root (the
/// repository's root for Git), and the variable files the plans read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The root module's folder, relative to the source root (`""`: the root).
    pub folder: String,
    /// The workspace planned.
    pub workspace: String,
    /// The variable files given to the plans, as configured.
    pub var_files: Vec<String>,
}

/// What one drift check of a Terraform root module gathered: both plans, the state's mark,
/// where resources are declared and, optionally, what the cloud account holds.
#[derive(Clone, Debug)]
pub struct PlanRun {
    /// The revision of the code planned (a commit, or a folder's content hash).
    pub revision: Option<Revision>,
    /// The root module.
    pub module: ModuleInfo,
    /// `terraform show -json` of the `plan -refresh-only`.
    pub refresh_only: RawPlan,
    /// `terraform show -json` of the normal plan.
    pub plan: RawPlan,
    /// The state's lineage and serial (`None`: no state yet).
    pub state: Option<StateMark>,
    /// The resource and module blocks of the code (paths relative to the source root).
    pub declarations: Vec<Declaration>,
    /// The cloud account's resources, for resources in no state (`None`: not listed).
    pub cloud: Option<CloudInventory>,
    /// The arguments of each resource type, from the providers' schemas (`None`: not known;
    /// then only a security group's rules are compared where the code leaves them unset).
    pub arguments: Option<Arc<Arguments>>,
    /// Things worth telling that are not errors.
    pub notes: Vec<String>,
    /// Problems that did not stop the check.
    pub warnings: Vec<String>,
}

/// Why Terraform could not give a plan, or a plan could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    /// A step of the check (`init`, `plan -refresh-only`, `plan`, `show`, `state pull`)
    /// could not run or failed.
    #[error("{step}")]
    Step {
        /// The step, after the program that ran it (`terraform plan`, `tofu init`).
        step: String,
        /// How running it failed (not found, exit status and standard error, timeout).
        #[source]
        source: RenderError,
    },
    /// What `terraform show -json` printed is not a plan DriftGuard can read.
    #[error("the {what} is not a plan in Terraform's JSON format: {problem}")]
    PlanJson {
        /// Which plan (`refresh-only plan`, `plan`).
        what: String,
        /// What is wrong.
        problem: String,
    },
    /// The state holds no resource, and the environment does not say it is meant to be
    /// empty: nothing is recorded (every resource of the code would be "never applied", every
    /// resource of the account an orphan). A missing `terraform.backendConfig` reads an empty
    /// local state.
    #[error(
        "the state of workspace {workspace} holds no resource: nothing was recorded (is the \
         state's backend configured? terraform.backendConfig); if the state is meant to be \
         empty, set terraform.expectEmptyState: true"
    )]
    EmptyState {
        /// The workspace planned.
        workspace: String,
    },
    /// An input of the check is missing or cannot be used (the module folder, a variable
    /// file, a workspace).
    #[error("{what}: {problem}")]
    Input {
        /// The input.
        what: String,
        /// What is wrong.
        problem: String,
    },
}
