//! What a statement touched, as the audit record names it.

use lakeward_policy::Securable;

/// A securable the statement reads, writes, creates, drops or grants on, and the action it was
/// authorized for (`SelectTable`, `ModifyTable`, ...), for the audit record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableAccess {
    pub action: String,
    pub securable: Securable,
}
